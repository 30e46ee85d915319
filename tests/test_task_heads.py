"""Resume and status read task states by key from `task_heads` (m008), never the whole log.

A real warehouse file: tasks in every state, a task decided twice, a merge, a warehouse from
before m008 migrated forward; the query plans are asked of SQLite itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from medstore.warehouse import queries
from medstore.warehouse.derived import compare
from medstore.warehouse.events import (
    Envelope,
    SampleAccepted,
    SampleRejected,
    TaskFailed,
    TaskStarted,
)
from medstore.warehouse.merge import merge_warehouses
from medstore.warehouse.status import warehouse_status
from medstore.warehouse.store import Warehouse

RECIPE = "consult"


def key(i: int) -> str:
    return f"{RECIPE}:case-{i}:v1"


def decide(warehouse: Warehouse, i: int, outcome: str, run: str = "run-1") -> None:
    envelope = Envelope(run, RECIPE, key(i))
    events = [(TaskStarted(source_id=f"case-{i}", source_record="{}"), envelope)]
    if outcome == "accepted":
        sample = SampleAccepted(
            sample_id=f"s-{i}-{run}", content_hash=f"h{i}{run}", sample="{}", label="low"
        )
        events.append((sample, envelope))
    elif outcome == "rejected":
        events.append((SampleRejected(reason="unsafe"), envelope))
    elif outcome == "failed":
        events.append((TaskFailed(reason="timeout"), envelope))
    warehouse.append(events)


def fill(warehouse: Warehouse) -> None:
    """Tasks 0-3 accepted, 4-5 rejected, 6 failed, 7 pending; 8 accepted, then redone and
    rejected by a later run (its head is the rejection); 9 failed, then accepted."""
    for i, outcome in enumerate(["accepted"] * 4 + ["rejected"] * 2 + ["failed", "pending"]):
        decide(warehouse, i, outcome)
    decide(warehouse, 8, "accepted")
    decide(warehouse, 8, "rejected", run="run-2")
    decide(warehouse, 9, "failed")
    decide(warehouse, 9, "accepted", run="run-2")


def test_finished_tasks_are_looked_up_by_key(warehouse: Warehouse) -> None:
    fill(warehouse)
    asked = [key(i) for i in range(12)]  # 10 and 11 are not in the warehouse at all
    assert set(warehouse.finished_tasks(RECIPE, asked)) == {
        key(i) for i in (0, 1, 2, 3, 4, 5, 8, 9)
    }
    assert not warehouse.finished_tasks(RECIPE, [key(6), key(7), key(10)])
    assert not warehouse.finished_tasks("hierarchical", asked)  # another recipe's tasks
    assert warehouse.finished_tasks(RECIPE, []) == {}
    states = {
        row["task_key"]: (row["state"], row["reason"], row["last_run_id"])
        for row in warehouse.query("SELECT * FROM task_state")
    }
    assert states[key(8)] == ("rejected", "unsafe", "run-2")
    assert states[key(9)] == ("accepted", None, "run-2")
    assert states[key(7)] == ("pending", None, "run-1")
    assert len(states) == 10


def test_finished_tasks_in_chunks(warehouse: Warehouse, monkeypatch) -> None:
    """More keys than one lookup takes: every chunk is asked."""
    fill(warehouse)
    monkeypatch.setattr("medstore.warehouse.store.FINISHED_CHUNK", 3)
    asked = [key(i) for i in range(12)]
    assert set(warehouse.finished_tasks(RECIPE, asked)) == {
        key(i) for i in (0, 1, 2, 3, 4, 5, 8, 9)
    }


def plan(conn: sqlite3.Connection, name: str, **params: object) -> str:
    rows = conn.execute("EXPLAIN QUERY PLAN " + queries.sql(name), params).fetchall()
    return "\n".join(row["detail"] for row in rows)


def test_resume_lookup_and_status_read_no_table_whole(warehouse: Warehouse) -> None:
    """The plans SQLite chooses: resume's lookup searches task_heads by its primary key, once
    per key asked; status reads the counts kept as tasks change; neither reads `events`."""
    fill(warehouse)
    for analyzed in (False, True):  # with statistics SQLite once preferred the state index
        if analyzed:
            warehouse.conn.execute("ANALYZE")
        lookup = plan(warehouse.conn, "finished_tasks", recipe=RECIPE, task_keys='["a", "b"]')
        assert "SEARCH h USING PRIMARY KEY (recipe=? AND task_key=?)" in lookup, lookup
        assert "SCAN h" not in lookup and "events" not in lookup, lookup
    for name in ("status_task_states", "status_samples_per_recipe"):
        status = plan(warehouse.conn, name)
        assert status == "SCAN status_counts", status  # a few rows, counted as they change
    sizes = plan(warehouse.conn, "status_sizes")
    assert "SCAN events" not in sizes and "SCAN blobs" not in sizes, sizes


def test_status_counts_match_the_log(warehouse: Warehouse) -> None:
    fill(warehouse)
    status = warehouse_status(warehouse)
    consult = status["recipes"][RECIPE]
    assert consult["tasks"] == {"accepted": 5, "rejected": 3, "failed": 1, "pending": 1}
    assert consult["failures_by_reason"] == {"unsafe": 3, "timeout": 1}
    assert status["events"] == warehouse.query("SELECT count(*) AS n FROM events")[0]["n"]
    assert status["blobs"] == warehouse.query("SELECT count(*) AS n FROM blobs")[0]["n"]


def test_writer_kept_heads_equal_the_rebuild_after_a_merge(tmp_path: Path) -> None:
    """Shards decided in any order merge into heads that are those the log derives."""
    shards = []
    for n in range(2):
        path = tmp_path / f"shard{n}.db"
        with Warehouse(path) as shard:
            for i in range(n, 10, 2):
                decide(shard, i, "accepted" if i % 3 else "failed", run=f"run-{n}")
            decide(shard, 0, "rejected", run=f"late-{n}")  # both shards decide task 0
        shards.append(path)
    target = tmp_path / "merged.db"
    merge_warehouses([str(p) for p in shards], str(target))
    with Warehouse(target) as merged:
        assert compare(merged.conn, "task_heads") == ([], 0)
        assert compare(merged.conn, "status_counts") == ([], 0)
        latest = merged.query(
            "SELECT run_id FROM events WHERE task_key = ? AND event_type = 'sample_rejected'"
            " ORDER BY id DESC LIMIT 1",
            (key(0),),
        )[0]["run_id"]
        head = merged.query("SELECT * FROM task_state WHERE task_key = ?", (key(0),))[0]
        assert (head["state"], head["last_run_id"]) == ("rejected", latest)
        assert merged.verify().ok


def test_a_forged_head_is_caught_by_verify(warehouse: Warehouse) -> None:
    fill(warehouse)
    warehouse.conn.execute("UPDATE task_heads SET state = 'accepted' WHERE task_key = ?", (key(6),))
    report = warehouse.verify()
    assert not report.ok
    assert any("task_heads" in str(problem) for problem in report.problems), report.problems


def test_a_warehouse_from_before_m008_gets_its_heads(db_path: Path) -> None:
    with Warehouse(db_path) as warehouse:
        fill(warehouse)
        warehouse.conn.execute("DROP VIEW task_state")
        warehouse.conn.execute("DROP TABLE task_heads")
        warehouse.conn.execute("DELETE FROM _migrations WHERE name = 'm008_task_heads'")
    with Warehouse(db_path) as reopened:
        assert compare(reopened.conn, "task_heads") == ([], 0)
        assert len(reopened.finished_tasks(RECIPE, [key(i) for i in range(10)])) == 8


def test_status_counts_follow_redos_reviews_and_rebuilds(warehouse: Warehouse) -> None:
    """Counts kept by triggers stay equal to a count of what they count: after a task is
    redone, a sample rejected by a reviewer (out of the dataset) and accepted again, and after
    a rebuild of the tables under them."""
    from medstore.warehouse.derived import rebuild_all
    from medstore.warehouse.events import ReviewVerdict

    fill(warehouse)

    def counted() -> dict:
        return warehouse_status(warehouse)["recipes"][RECIPE]

    assert counted()["samples"] == 5
    sample_id = warehouse.query("SELECT sample_id FROM samples LIMIT 1")[0]["sample_id"]
    review = ReviewVerdict(sample_id=sample_id, verdict="reject", reviewer="qa")
    warehouse.append([(review, Envelope(None, RECIPE))])
    assert counted()["samples"] == 4
    warehouse.append([(review.model_copy(update={"verdict": "accept"}), Envelope(None, RECIPE))])
    assert counted()["samples"] == 5
    decide(warehouse, 6, "accepted", run="run-3")  # the failed task, redone
    assert counted()["tasks"] == {"accepted": 6, "rejected": 3, "pending": 1}
    assert counted()["samples"] == 6
    assert compare(warehouse.conn, "status_counts") == ([], 0)
    rebuild_all(warehouse.conn)
    assert compare(warehouse.conn, "status_counts") == ([], 0)
    assert counted()["tasks"] == {"accepted": 6, "rejected": 3, "pending": 1}
    warehouse.conn.execute("UPDATE status_counts SET n = n + 1 WHERE what = 'samples'")
    assert not warehouse.verify().ok
