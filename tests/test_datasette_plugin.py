"""medstore's pages under plain `datasette` (its own CLI, not `cli.py serve`): the plugin is
installed by an entry point and must find the warehouse itself, read it without writing to it,
take the review token from $MEDSTORE_REVIEW_TOKEN only, and leave other SQLite files alone."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from medstore.serve.plugin import pending_migrations
from medstore.warehouse.migrations import MIGRATIONS, ensure_migrations_table
from medstore.warehouse.store import Warehouse, connect

from .teachers_serve import DatasetteProcess, build_warehouse, copy_warehouse

TOKEN = "plain-datasette-token"
NO_TOKEN = {"MEDSTORE_REVIEW_TOKEN": ""}


@pytest.fixture(scope="module")
def source_db(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("plain-datasette"))


@pytest.fixture
def db(source_db: Path, tmp_path: Path) -> Path:
    """A copy with no WAL beside it, as a finished run leaves the file."""
    return copy_warehouse(source_db, tmp_path / "warehouse.db")


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def rows(client: httpx.Client, path: str, **params: str) -> list[dict]:
    response = client.get(f"/warehouse/{path}.json", params={"_shape": "array", **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_medstore_pages_work_and_the_file_is_not_written(db: Path) -> None:
    before = fingerprint(db)
    with DatasetteProcess(db, env=NO_TOKEN) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        [database] = client.get("/-/databases.json").json()
        # Mutable, so new events show, and opened read-only (mode=ro), not immutable.
        assert database["name"] == "warehouse" and database["is_mutable"]

        sample_id = rows(client, "samples", task_key="consult:case-01:v1")[0]["sample_id"]
        page = client.get(f"/-/medstore/sample/{sample_id}")
        assert page.status_code == 200 and "In the dataset." in page.text
        assert 'data-event-type="repair_requested"' in page.text
        story = client.get(f"/-/medstore/sample/{sample_id}.json").json()
        assert story["task_key"] == "consult:case-01:v1" and story["status"]["in_dataset"]

        charts = client.get("/-/medstore/charts")
        assert charts.status_code == 200 and charts.text.count("medstore-chart-svg") == 6

        balance = {row["label"]: row["samples"] for row in rows(client, "label_balance")}
        assert balance == {"high": 2, "moderate": 2, "low": 1}

        metadata = client.get("/-/metadata.json").json()
        assert metadata["title"] == "medstore warehouse"
        tables = metadata["databases"]["warehouse"]["tables"]
        assert tables["samples"]["title"] == "Samples (the dataset)"
        facets = client.get("/warehouse/samples.json").json()["facet_results"]
        assert {item["value"] for item in facets["label"]["results"]} == set(balance)
        listing = client.get("/warehouse/samples").text
        assert "<h1" in listing and "Samples (the dataset)" in listing
        assert f'href="/-/medstore/sample/{sample_id}"' in listing
        # Nobody built the search index (only `cli.py serve` writes it): no query that needs it.
        assert "search_raw_outputs" not in metadata["databases"]["warehouse"]["queries"]
        assert client.get("/warehouse/search_raw_outputs").status_code == 404

        [css] = re.findall(r'href="(/-/static-plugins/[^"]+/medstore\.css)"', page.text)
        stylesheet = client.get(css)
        assert stylesheet.status_code == 200 and "medstore-json" in stylesheet.text
        assert stylesheet.headers["content-type"].startswith("text/css")
    assert fingerprint(db) == before
    # SQLite's read-only WAL readers may leave an empty -wal and a -shm; nothing is in them.
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_without_the_env_token_reviewing_is_off(db: Path) -> None:
    before = fingerprint(db)
    with DatasetteProcess(db, env=NO_TOKEN) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        login = client.get("/-/medstore/login")
        assert login.status_code == 200 and "Reviewing is off on this server" in login.text
        assert 'id="login-submit"' not in login.text
        sample_id = rows(client, "samples")[0]["sample_id"]
        refused = client.post(
            f"/-/medstore/sample/{sample_id}/review",
            data={"verdict": "reject"},
            headers={"Authorization": "Bearer anything"},
        )
        assert refused.status_code == 403
    assert fingerprint(db) == before


def test_with_the_env_token_a_bearer_review_is_recorded(db: Path) -> None:
    with DatasetteProcess(db, env={"MEDSTORE_REVIEW_TOKEN": TOKEN}) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        assert 'id="login-submit"' in client.get("/-/medstore/login").text
        target = sorted(row["sample_id"] for row in rows(client, "samples"))[0]
        url = f"/-/medstore/sample/{target}/review"
        form = {"verdict": "reject", "note": "wrong code", "reviewer": "dr-lee"}
        wrong = client.post(url, data=form, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        done = client.post(url, data=form, headers={"Authorization": f"Bearer {TOKEN}"})
        assert done.status_code == 200 and done.json()["ok"] is True
        # Datasette sees the new event on the next read: the file is served mutable.
        assert target not in {row["sample_id"] for row in rows(client, "samples")}
        story = client.get(f"/-/medstore/sample/{target}.json").json()
        assert story["status"]["reasons"] == ["rejected by reviewer dr-lee"]
    with Warehouse(db, readonly=True) as warehouse:
        [review] = warehouse.query("SELECT * FROM review_verdicts")
        assert review["sample_id"] == target and review["reviewer"] == "dr-lee"
    with Warehouse(db) as warehouse:
        assert warehouse.verify().ok


def test_an_immutable_warehouse_gets_no_reviewing(db: Path) -> None:
    before = fingerprint(db)
    env = {"MEDSTORE_REVIEW_TOKEN": TOKEN}
    with DatasetteProcess("--immutable", db, env=env) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        assert "Reviewing is off on this server" in client.get("/-/medstore/login").text
        sample_id = rows(client, "samples")[0]["sample_id"]
        assert client.get(f"/-/medstore/sample/{sample_id}").status_code == 200
        refused = client.post(
            f"/-/medstore/sample/{sample_id}/review",
            data={"verdict": "reject"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert refused.status_code == 403
    assert any("served immutable: reviewing is off" in line for line in server.output)
    assert fingerprint(db) == before


def test_a_warehouse_behind_the_schema_is_reported_not_migrated(db: Path, tmp_path: Path) -> None:
    assert pending_migrations(str(db)) == []
    old = tmp_path / "old.db"
    conn = connect(old)
    ensure_migrations_table(conn)
    for fn in MIGRATIONS[:2]:
        fn(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (fn.__name__,))
    conn.close()
    before = fingerprint(old)
    assert pending_migrations(str(old)) == [fn.__name__ for fn in MIGRATIONS[2:]]
    with DatasetteProcess(old, env=NO_TOKEN) as server:
        assert httpx.get(server.base_url + "/-/metadata.json").json()["title"]
    assert any("predates this medstore" in line for line in server.output)
    assert fingerprint(old) == before


def test_an_ordinary_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    plain = tmp_path / "plain.db"
    with sqlite3.connect(plain) as conn:
        conn.execute("CREATE TABLE events (sample_id TEXT, payload_json TEXT)")
        conn.execute("INSERT INTO events VALUES ('s-1', '{\"a\": 1}')")
    conn.close()
    before = fingerprint(plain)
    with DatasetteProcess(plain, env={"MEDSTORE_REVIEW_TOKEN": TOKEN}) as server:
        client = httpx.Client(base_url=server.base_url, timeout=30)
        for path in ("/-/medstore/sample/s-1", "/-/medstore/charts", "/-/medstore/login"):
            assert client.get(path).status_code == 404, path
        assert client.get("/-/metadata.json").json() == {}
        table = client.get("/plain/events").text
        assert "medstore" not in table  # no stylesheet, menu links or rendered cells
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        actor = client.get("/-/actor.json", headers=bearer).json()
        assert actor == {"actor": None}
    assert fingerprint(plain) == before


def test_imported_before_datasette_every_hook_is_registered() -> None:
    """Importing datasette.plugins loads the entry points, which import the plugin; the plugin
    imported first must still be registered whole (it once lost every hook defined after its
    own import of datasette.plugins, and with them the default facets)."""
    import subprocess
    import sys

    check = (
        "import medstore.serve.plugin as plugin\n"
        "from datasette.plugins import pm\n"
        "assert pm.is_registered(plugin)\n"
        "hooks = {h.name for h in pm.get_hookcallers(plugin)}\n"
        "missing = {'get_metadata', 'extra_css_urls', 'startup', 'register_routes'} - hooks\n"
        "assert not missing, missing\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
