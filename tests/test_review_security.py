"""The review pages under attack: the token stays out of the server's output even on error
pages, `next` cannot leave the site, a wrong Bearer header is refused (not read as anonymous),
logins are throttled, notes are bounded, error pages name no file, and credentialed data is
served beyond loopback only behind a login."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.events import DataUseDecision, Envelope
from medstore.warehouse.store import Warehouse

from .teachers_serve import ServeProcess, build_warehouse, copy_warehouse

TOKEN = "review-token-0123456789"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("security"))


@pytest.fixture
def db(built: Path, tmp_path: Path) -> Path:
    return copy_warehouse(built, tmp_path / "w.db")


def a_sample(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT sample_id FROM samples LIMIT 1").fetchone()[0]
    finally:
        conn.close()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def test_the_token_never_reaches_the_servers_output(db: Path) -> None:
    sample = a_sample(db)
    with ServeProcess(db, "--review-token", TOKEN) as server:
        base = server.base_url
        assert httpx.get(f"{base}/-/medstore/sample/nope").status_code == 404
        # A body that is not UTF-8 makes the bulk handler fail inside: a 500.
        crash = httpx.post(f"{base}/-/medstore/review/bulk", content=b"\xff\xfe", headers=bearer())
        assert crash.status_code == 500
        assert "Something went wrong on the server" in crash.text
        assert TOKEN not in crash.text and str(db) not in crash.text
        wrong = httpx.post(f"{base}/-/medstore/login", data={"reviewer": "x", "token": "guess"})
        assert wrong.status_code == 403
        ok = httpx.post(
            f"{base}/-/medstore/sample/{sample}/review", data={"verdict": "accept"},
            headers=bearer(),
        )  # fmt: skip
        assert ok.status_code == 200 and ok.json()["ok"]
    output = "\n".join(server.output)
    assert "UnicodeDecodeError" in output  # the 500 was logged, with its traceback ...
    assert TOKEN not in output  # ... but not the token, not in any local or repr


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "/\\evil.example/x", "http://evil.example/x", "/\t/evil.example",
     "https:evil.example", "evil.example"],
)  # fmt: skip
def test_next_never_leaves_the_site(db: Path, target: str) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        response = httpx.post(
            f"{server.base_url}/-/medstore/login",
            data={"reviewer": "Dr Lee", "token": TOKEN, "next": target},
        )
    assert response.status_code == 302
    assert response.headers["location"] == "/"


def test_next_within_the_site_is_kept(db: Path) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        response = httpx.post(
            f"{server.base_url}/-/medstore/login",
            data={"reviewer": "Dr Lee", "token": TOKEN, "next": "/-/medstore/review?recipe=x"},
        )
    assert response.headers["location"] == "/-/medstore/review?recipe=x"


def test_a_wrong_bearer_header_is_refused_everywhere(db: Path) -> None:
    sample = a_sample(db)
    with ServeProcess(db, "--review-token", TOKEN) as server:
        base = server.base_url
        review = httpx.post(
            f"{base}/-/medstore/sample/{sample}/review", data={"verdict": "reject"},
            headers=bearer("not-the-token"),
        )  # fmt: skip
        page = httpx.get(f"{base}/-/medstore/sample/{sample}", headers=bearer("nope"))
        table = httpx.get(f"{base}/w/samples.json", headers=bearer("nope"))
        anonymous = httpx.get(f"{base}/-/medstore/sample/{sample}")
    assert review.status_code == 403
    assert page.status_code == 403 and "does not hold this server" in page.text
    assert table.status_code == 403
    assert anonymous.status_code == 200  # no header at all: reading is open
    with Warehouse(db, readonly=True) as warehouse:
        assert warehouse.query("SELECT * FROM events WHERE event_type = 'review_verdict'") == []


def test_failed_logins_are_throttled(db: Path) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        url = f"{server.base_url}/-/medstore/login"
        codes = [httpx.post(url, data={"reviewer": "x", "token": f"g{i}"}).status_code
                 for i in range(5)]  # fmt: skip
        blocked = httpx.post(url, data={"reviewer": "x", "token": TOKEN})
    assert codes == [403] * 5
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text


def test_a_huge_note_is_refused(db: Path) -> None:
    sample = a_sample(db)
    with ServeProcess(db, "--review-token", TOKEN) as server:
        response = httpx.post(
            f"{server.base_url}/-/medstore/sample/{sample}/review",
            data={"verdict": "reject", "note": "n" * 3_000_000}, headers=bearer(),
        )  # fmt: skip
    assert response.status_code == 400
    assert "characters; at most 4,000" in response.json()["error"]
    result = CliRunner().invoke(cli, ["review", sample, "--reject", "--note", "n" * 5000,
                                      "--db", str(db)])  # fmt: skip
    assert result.exit_code == 1 and "at most 4,000" in result.output


def test_error_pages_name_no_file(db: Path) -> None:
    with ServeProcess(db, "--review-token", TOKEN) as server:
        base = server.base_url
        pages = [
            httpx.get(f"{base}/-/medstore/sample/nope"),
            httpx.get(f"{base}/-/medstore/task/consult/nope"),
            httpx.get(f"{base}/w"),
            httpx.get(f"{base}/-/medstore/review/item?accepted_id=999999"),
        ]
    for page in pages:
        assert str(db) not in page.text and str(db.parent) not in page.text


def credentialed(db: Path) -> Path:
    with Warehouse(db) as warehouse:
        decision = DataUseDecision(
            allowed=True, backend="local", base_url=None, host=None, rule="embedded",
            message="embedded model",
        )  # fmt: skip
        warehouse.append([(decision, Envelope(run_id="r", recipe="mimic-dialogue"))])
    return db


def test_credentialed_data_is_not_served_beyond_loopback_without_login(db: Path) -> None:
    credentialed(db)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--db", str(db)])
    assert result.exit_code == 1
    assert "holds credentialed data (MIMIC)" in result.output and "--require-login" in result.output


def test_require_login_closes_every_page_until_login(db: Path) -> None:
    credentialed(db)
    sample = a_sample(db)
    with ServeProcess(db, "--review-token", TOKEN, "--require-login") as server:
        base = server.base_url
        anonymous = [httpx.get(f"{base}{path}").status_code
                     for path in ("/", "/w/samples", f"/-/medstore/sample/{sample}")]  # fmt: skip
        client = httpx.Client(base_url=base)
        login = client.post("/-/medstore/login", data={"reviewer": "Dr Lee", "token": TOKEN})
        after = [client.get(path).status_code
                 for path in ("/", "/w/samples", f"/-/medstore/sample/{sample}")]  # fmt: skip
    assert anonymous == [403, 403, 403]
    assert login.status_code == 302 and after == [200, 200, 200]
