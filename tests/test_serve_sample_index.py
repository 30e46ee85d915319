"""`samples` reads `sample_index`, which triggers keep as events land (migration m003). These tests
hold it to the definition it replaced: window functions over the log, kept here as the
specification, on histories with re-runs, exact copies, a copy taking over from a replaced
original, rejections and reviews; and on a warehouse whose events predate the migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from medstore.warehouse.events import (
    Envelope,
    ReviewVerdict,
    SampleAccepted,
    SampleRejected,
    make_record,
)
from medstore.warehouse.hashing import canonical_json, content_hash
from medstore.warehouse.migrations import MIGRATIONS, ensure_migrations_table
from medstore.warehouse.store import Warehouse, append_records, connect

SPECIFICATION = """
WITH terminal AS (
    SELECT id, event_id, run_id, recipe, task_key, event_type, created_utc, payload_json,
        row_number() OVER (PARTITION BY recipe, task_key ORDER BY id DESC) AS recency
    FROM events WHERE event_type IN ('sample_accepted', 'sample_rejected')
),
current AS (
    SELECT id, event_id, run_id, recipe, task_key, created_utc,
        json_extract(payload_json, '$.sample_id') AS sample_id,
        json_extract(payload_json, '$.content_hash') AS content_hash,
        json_extract(payload_json, '$.label') AS label,
        json_extract(payload_json, '$.sample_blob') AS sample_blob,
        row_number() OVER (
            PARTITION BY recipe, json_extract(payload_json, '$.content_hash') ORDER BY id
        ) AS copy_number
    FROM terminal WHERE recency = 1 AND event_type = 'sample_accepted'
),
reviews AS (
    SELECT sample_id, verdict, note FROM (
        SELECT json_extract(payload_json, '$.sample_id') AS sample_id,
            json_extract(payload_json, '$.verdict') AS verdict,
            json_extract(payload_json, '$.note') AS note,
            row_number() OVER (
                PARTITION BY json_extract(payload_json, '$.sample_id') ORDER BY id DESC
            ) AS recency
        FROM events WHERE event_type = 'review_verdict'
    ) WHERE recency = 1
)
SELECT c.sample_id, c.recipe, c.task_key, c.label, c.run_id, c.event_id AS accepted_event_id,
    c.created_utc, c.content_hash, r.verdict AS review_verdict, r.note AS review_note,
    b.content AS sample_json
FROM current c
JOIN blobs b ON b.hash = c.sample_blob
LEFT JOIN reviews r ON r.sample_id = c.sample_id
WHERE c.copy_number = 1 AND (r.verdict IS NULL OR r.verdict != 'reject')
"""

TASKS = ["t1", "t2", "t3", "t4"]
CONTENTS = ["a", "b", "c"]

# One step of a history: accept task with content, reject task, or review a sample id.
step = st.one_of(
    st.tuples(st.just("accept"), st.sampled_from(TASKS), st.sampled_from(CONTENTS)),
    st.tuples(st.just("reject"), st.sampled_from(TASKS), st.just("")),
    st.tuples(
        st.just("review"),
        st.sampled_from(TASKS),
        st.tuples(st.sampled_from(CONTENTS), st.sampled_from(["accept", "reject"])),
    ),
)


def sample_id(task: str, content: str) -> str:
    return f"s-{task}-{content}"


def event_for(kind: str, task: str, detail) -> tuple:
    envelope = Envelope(run_id="r", recipe="consult", task_key=task)
    if kind == "accept":
        body = canonical_json({"content": detail})
        event = SampleAccepted(
            sample_id=sample_id(task, detail),
            content_hash=content_hash(body),
            sample=body,
            label=detail,
        )
    elif kind == "reject":
        event = SampleRejected(reason="invalid")
    else:
        content, verdict = detail
        event = ReviewVerdict(
            sample_id=sample_id(task, content), verdict=verdict, reviewer="qa", note=verdict
        )
    return event, envelope


def rows(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    return sorted(tuple(row) for row in conn.execute(sql))


def test_rerun_copy_takeover_and_reviews(db_path: Path) -> None:
    history = [
        ("accept", "t1", "a"),  # the original
        ("accept", "t2", "a"),  # an exact copy: hidden
        ("accept", "t3", "b"),
        ("review", "t3", ("b", "reject")),  # a reviewer rejects it: hidden
        ("reject", "t1", ""),  # t1's original is replaced: t2's copy takes over
        ("accept", "t4", "a"),  # a copy of t2's now: hidden
        ("review", "t3", ("b", "accept")),  # and back
        ("accept", "t1", "c"),
    ]
    with Warehouse(db_path) as warehouse:
        warehouse.append(event_for(*one) for one in history)
        view = rows(warehouse.conn, "SELECT * FROM samples")
        assert view == rows(warehouse.conn, SPECIFICATION)
        assert [row[0] for row in view] == ["s-t1-c", "s-t2-a", "s-t3-b"]


@settings(max_examples=60, deadline=None)
@given(st.lists(step, max_size=25))
def test_matches_the_window_definition(tmp_path_factory, history) -> None:
    path = tmp_path_factory.mktemp("index") / "warehouse.db"
    with Warehouse(path) as warehouse:
        # Several batches, as the runner's writer commits them.
        for start in range(0, len(history), 4):
            warehouse.append(event_for(*one) for one in history[start : start + 4])
        assert rows(warehouse.conn, "SELECT * FROM samples") == rows(warehouse.conn, SPECIFICATION)


def test_backfilled_from_a_log_older_than_the_index(db_path: Path, monkeypatch) -> None:
    import medstore.warehouse.store

    # The writer of the time kept no derived tables.
    monkeypatch.setattr(medstore.warehouse.store, "project", lambda conn, rows: None)
    conn = connect(db_path)
    ensure_migrations_table(conn)
    for migration in MIGRATIONS[:2]:  # the log as it was before m003
        migration(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (migration.__name__,))
    history = [
        ("accept", "t1", "a"),
        ("accept", "t2", "a"),
        ("accept", "t3", "b"),
        ("review", "t2", ("a", "reject")),
        ("reject", "t1", ""),
        ("accept", "t4", "c"),
        ("accept", "t4", "b"),
    ]
    append_records(conn, [make_record(*event_for(*one)) for one in history])
    conn.close()
    monkeypatch.undo()
    with Warehouse(db_path) as warehouse:
        view = rows(warehouse.conn, "SELECT * FROM samples")
        assert view == rows(warehouse.conn, SPECIFICATION)
        # t2's copy took over from t1 but a reviewer rejected it; t4's b is a copy of t3's.
        assert [row[0] for row in view] == ["s-t3-b"]
        warehouse.append([event_for("review", "t2", ("a", "accept"))])
        assert [row[0] for row in rows(warehouse.conn, "SELECT * FROM samples")] == [
            "s-t2-a",
            "s-t3-b",
        ]


def test_provenance_status_gives_the_membership_reasons(db_path: Path) -> None:
    """The provenance page's "in the dataset?" answer is the sample_membership view's."""
    from medstore.serve.story import sample_story

    history = [
        ("accept", "t1", "a"),
        ("accept", "t2", "a"),  # a copy of t1's
        ("accept", "t3", "b"),
        ("accept", "t1", "c"),  # replaces t1's a: t2's copy takes over
        ("accept", "t4", "c"),  # a copy of t1's c
        ("review", "t3", ("b", "reject")),
        ("review", "t2", ("a", "reject")),
        ("review", "t2", ("a", "accept")),  # and back
    ]
    with Warehouse(db_path) as warehouse:
        warehouse.append(event_for(*one) for one in history)
        status = {
            sid: sample_story(warehouse, sid)["status"]
            for sid in ("s-t1-a", "s-t2-a", "s-t3-b", "s-t1-c", "s-t4-c")
        }
        in_dataset = {row["sample_id"] for row in warehouse.query("SELECT * FROM samples")}
    assert {sid for sid, one in status.items() if one["in_dataset"]} == in_dataset
    assert status["s-t1-a"]["reasons"] == ["a later outcome of its task replaced it"]
    assert status["s-t2-a"]["reasons"] == [] and status["s-t2-a"]["review"]["verdict"] == "accept"
    assert status["s-t3-b"]["reasons"] == ["rejected by reviewer qa"]
    assert status["s-t3-b"]["review"] == {
        "sample_id": "s-t3-b",
        "verdict": "reject",
        "reviewer": "qa",
        "note": "reject",
    }
    assert status["s-t4-c"]["reasons"] == ["exact duplicate of the earlier sample s-t1-c"]
    assert status["s-t4-c"]["duplicate_of"] == "s-t1-c"
    assert status["s-t1-c"] == {
        "in_dataset": True,
        "reasons": [],
        "review": None,
        "duplicate_of": None,
    }
