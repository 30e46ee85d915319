"""The event log itself: migrations, append-only rows, blobs, the hash chain and verify."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medstore.warehouse.events import Envelope, ReviewVerdict, RunStarted, TaskStarted
from medstore.warehouse.hashing import canonical_json, content_hash, utc_now, uuid7
from medstore.warehouse.migrations import MIGRATIONS
from medstore.warehouse.store import Warehouse

EXPECTED_EVENT_COLUMNS = [
    "id",
    "event_id",
    "run_id",
    "recipe",
    "task_key",
    "stage",
    "attempt",
    "event_type",
    "parent_event_id",
    "payload_json",
    "created_utc",
    "prev_hash",
    "hash",
]


def some_events(n: int = 5) -> list:
    envelope = Envelope(run_id="run-1", recipe="consult", task_key="consult:x:v1")
    events = [(RunStarted(command="run", config={}, code_version="test"), envelope)]
    events += [
        (
            TaskStarted(
                source_id=f"x{i}", source_record=canonical_json({"i": i, "shared": "text"})
            ),
            envelope,
        )
        for i in range(n - 1)
    ]
    return events


def test_migrated_schema_has_expected_columns(warehouse: Warehouse) -> None:
    columns = [row["name"] for row in warehouse.conn.execute("PRAGMA table_info(events)")]
    assert columns == EXPECTED_EVENT_COLUMNS
    applied = [row[0] for row in warehouse.conn.execute("SELECT name FROM _migrations ORDER BY 1")]
    assert applied == [fn.__name__ for fn in MIGRATIONS]
    views = {
        row[0] for row in warehouse.conn.execute("SELECT name FROM sqlite_master WHERE type='view'")
    }
    assert {"llm_calls", "task_state", "samples", "run_summary", "provenance"} <= views


def test_older_schema_migrates_forward(db_path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    from medstore.warehouse.migrations import ensure_migrations_table

    ensure_migrations_table(conn)
    MIGRATIONS[0](conn)
    conn.execute("INSERT INTO _migrations VALUES ('m001_event_log', '2026-01-01')")
    conn.close()
    with Warehouse(db_path) as warehouse:
        names = [
            row[0] for row in warehouse.conn.execute("SELECT name FROM _migrations ORDER BY 1")
        ]
        assert names == [fn.__name__ for fn in MIGRATIONS]
        warehouse.append(some_events(3))
        assert warehouse.verify().ok


def test_update_and_delete_are_refused(warehouse: Warehouse) -> None:
    warehouse.append(some_events())
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        warehouse.conn.execute("UPDATE events SET payload_json = '{}' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        warehouse.conn.execute("DELETE FROM events WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        warehouse.conn.execute("DELETE FROM blobs")


def test_blobs_are_stored_once(warehouse: Warehouse) -> None:
    envelope = Envelope(run_id="r")
    same = canonical_json({"note": "the same long source record"})
    warehouse.append(
        [(TaskStarted(source_id=str(i), source_record=same), envelope) for i in range(50)]
    )
    assert warehouse.conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    assert warehouse.blob(content_hash(same)) == same


def test_event_ids_are_unique_and_time_ordered(warehouse: Warehouse) -> None:
    records = warehouse.append(some_events(20))
    ids = [record.event_id for record in records]
    assert len(set(ids)) == 20
    assert all(created.endswith("Z") for created in (r.created_utc for r in records))


def drop_triggers(conn: sqlite3.Connection) -> None:
    for name in ("events_no_update", "events_no_delete"):
        conn.execute(f"DROP TRIGGER {name}")


def test_verify_detects_edited_row_without_triggers(warehouse: Warehouse) -> None:
    warehouse.append(some_events())
    assert warehouse.verify().ok
    drop_triggers(warehouse.conn)
    warehouse.conn.execute("""UPDATE events SET payload_json = '{"edited":true}' WHERE id = 3""")
    report = warehouse.verify()
    assert not report.ok
    assert any("id 3" in problem and "edited" in problem for problem in report.problems)


def test_verify_detects_removed_row(warehouse: Warehouse) -> None:
    warehouse.append(some_events())
    drop_triggers(warehouse.conn)
    warehouse.conn.execute("DELETE FROM events WHERE id = 2")
    report = warehouse.verify()
    assert any("chain broken" in problem for problem in report.problems)


def test_verify_detects_removed_last_row(warehouse: Warehouse) -> None:
    warehouse.append(some_events())
    drop_triggers(warehouse.conn)
    warehouse.conn.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
    report = warehouse.verify()
    assert any("removed from the end" in problem for problem in report.problems)


def test_verify_detects_edited_blob(warehouse: Warehouse) -> None:
    warehouse.append(some_events())
    warehouse.conn.execute("DROP TRIGGER blobs_no_update")
    warehouse.conn.execute("UPDATE blobs SET content = 'tampered'")
    assert any("blob" in problem for problem in warehouse.verify().problems)


def test_batch_writer_commits_everything_in_order(warehouse: Warehouse) -> None:
    from medstore.warehouse.events import make_record

    writer = warehouse.writer()
    futures = [
        writer.submit([make_record(event, env) for event, env in some_events(10)])
        for _ in range(30)
    ]
    writer.close()
    assert all(future.result() > 0 for future in futures)
    assert warehouse.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 300
    assert writer.batches < 30  # batched, not one transaction per submit
    assert warehouse.verify().ok


def test_review_verdict_roundtrip(warehouse: Warehouse) -> None:
    envelope = Envelope(recipe="consult", task_key="consult:x:v1")
    warehouse.append([(ReviewVerdict(sample_id="s-1", verdict="reject", reviewer="me"), envelope)])
    row = warehouse.query("SELECT event_type, payload_json FROM events")[0]
    assert row["event_type"] == "review_verdict"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_is_order_independent(value) -> None:
    import json

    decoded = json.loads(canonical_json(value))
    assert canonical_json(decoded) == canonical_json(value)
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert content_hash(canonical_json(reordered)) == content_hash(canonical_json(value))


def test_uuid7_sorts_by_time() -> None:
    import time

    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    assert first < second
    assert first[14] == "7"


def test_utc_now_spells_what_datetime_does() -> None:
    """utc_now spells each second once and keeps it: across second boundaries its text must
    stay datetime's ISO spelling, between the clock readings taken around it."""
    import time
    from datetime import UTC, datetime

    def spelled() -> str:
        return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"

    deadline = time.monotonic() + 1.2  # crosses at least one second boundary
    while time.monotonic() < deadline:
        before, now, after = spelled(), utc_now(), spelled()
        assert before <= now <= after
        assert len(now) == len(before) and now.endswith("Z")


def test_shipped_scenarios_cover_30_seeds_and_8_specialties() -> None:
    from pathlib import Path

    from medstore.recipes.consult import ConsultRecipe
    from medstore.sources.scenarios import load_scenarios

    scenarios = load_scenarios(Path(ConsultRecipe().default_source()))
    assert len(scenarios) >= 30
    assert len({scenario.specialty for scenario in scenarios}) >= 8
