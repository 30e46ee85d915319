"""`status` counts rejected tasks per content gate from kept tables (m012), not the log.

Real runs against the real fake teacher (a junk reply per task, so the verdicts name real gates),
then redo, revalidate, review, merge and rebuild: after each, the kept tables equal their
rebuild from the log and `status` gives what the rule it used to compute from the log itself
gives (REFERENCE, the query status ran before m012). The query plans are asked of SQLite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse import queries
from medstore.warehouse.derived import compare, rebuild_all
from medstore.warehouse.events import Envelope, SampleAccepted, TaskStarted
from medstore.warehouse.merge import merge_warehouses
from medstore.warehouse.status import render_status, warehouse_status
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import consult_stage, consult_teacher, first_user_message, write_scenarios
from .teachers_junk import FOUR_TURNS, junk_profile

KEPT = ("task_heads", "task_gate_failures", "gate_rejections")
# What status computed from the log before m012: every rejected task, once per gate any of its
# verdict events names.
REFERENCE = """
SELECT t.recipe, json_extract(g.value, '$.gate') AS gate, count(DISTINCT t.task_key) AS n
FROM task_state t
JOIN events e
    ON e.recipe = t.recipe AND e.task_key = t.task_key AND e.event_type = 'validation_verdict'
, json_each(e.payload_json, '$.gates') g
WHERE t.state = 'rejected'
GROUP BY 1, 2
ORDER BY n DESC, 1, 2
"""


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def mixed_teacher(request: dict) -> str:
    """Cases 1 and 4 get a four-turn dialogue (turn_count) on every attempt, case 2 a junk
    profile (vitals, placeholder); the rest good replies."""
    text = first_user_message(request)
    stage = consult_stage(request)
    if stage == "dialogue" and re.search(r'"age":\s*3[14]\b', text):
        return json.dumps(FOUR_TURNS)
    if stage == "profile" and "age (32)" in text:
        return junk_profile(request)
    return consult_teacher(request)


def run(db: Path, source: Path, responder: Callable, *extra: str) -> None:
    with serve() as server:
        server.set_responder(responder)
        result = invoke(
            "run", "--recipe", "consult", "--source", str(source), "--base-url",
            server.openai_base_url, "--model", "fake", "--db", str(db),
            "--retry-base-delay", "0", "--no-progress", *extra,
        )  # fmt: skip
    assert result.exit_code == 0, result.output


def by_gate(db: Path) -> tuple[list[tuple], list[tuple]]:
    """(what status shows, what the old rule computes from the log), as (recipe, gate, n)."""
    with Warehouse(db) as warehouse:
        shown = warehouse_status(warehouse)["recipes"]
        reference = [tuple(row) for row in warehouse.conn.execute(REFERENCE)]
    kept = [
        (recipe, gate, n)
        for recipe, info in shown.items()
        for gate, n in info.get("rejected_by_gate", {}).items()
    ]
    return kept, reference


def assert_kept_equal_rebuild(db: Path) -> None:
    with Warehouse(db) as warehouse:
        for table in KEPT:
            assert compare(warehouse.conn, table) == ([], 0), table
        assert warehouse.verify().ok


def assert_status_as_before(db: Path) -> list[tuple]:
    assert_kept_equal_rebuild(db)
    kept, reference = by_gate(db)
    assert kept == reference
    return kept


def gate_run(tmp_path: Path, name: str = "mixed.db", n: int = 5) -> tuple[Path, Path]:
    source = write_scenarios(tmp_path / "scenarios.json", n)
    db = tmp_path / name
    run(db, source, mixed_teacher)
    return db, source


def test_status_counts_gates_as_before_through_revalidate_redo_review_and_rebuild(
    tmp_path: Path,
) -> None:
    db, _ = gate_run(tmp_path)
    shown = assert_status_as_before(db)
    assert {gate for _, gate, _ in shown} >= {"turn_count", "vitals", "placeholder"}
    assert dict((gate, n) for _, gate, n in shown)["turn_count"] == 2  # cases 1 and 4, once each
    text = invoke("status", "--db", str(db)).output
    assert "content gates the rejected tasks failed" in text
    assert re.search(r"consult\s+2\s+turn_count", text)
    with Warehouse(db) as warehouse:  # the text is the one the old rule's counts render to
        status = warehouse_status(warehouse)
        status["recipes"]["consult"]["rejected_by_gate"] = {
            row[1]: row[2] for row in warehouse.conn.execute(REFERENCE)
        }
        assert render_status(status) == render_status(warehouse_status(warehouse))

    revalidated = invoke("revalidate", "--recipe", "consult", "--all", "--db", str(db))
    assert revalidated.exit_code == 0, revalidated.output
    with Warehouse(db) as warehouse:  # new verdicts and rejections, marked revalidated
        assert warehouse.conn.execute(
            "SELECT count(*) FROM events WHERE event_type = 'sample_rejected'"
            " AND json_extract(payload_json, '$.revalidated')"
        ).fetchone()[0] == 3  # fmt: skip
    assert assert_status_as_before(db) == shown

    with Warehouse(db) as warehouse:  # case 1 redone and accepted: its gate leaves the counts
        envelope = Envelope("redo-run", "consult", "consult:case-01:v1")
        warehouse.append([(TaskStarted(source_id="case-01", source_record="{}"), envelope)])
        assert warehouse.query(
            "SELECT count(*) AS n FROM task_gate_failures WHERE task_key LIKE '%case-01%'"
        )[0]["n"] == 0  # fmt: skip
        sample = SampleAccepted(sample_id="s-redo", content_hash="h-redo", sample="{}")
        warehouse.append([(sample, envelope)])
    redone = assert_status_as_before(db)
    assert dict((gate, n) for _, gate, n in redone)["turn_count"] == 1

    reviewed = invoke("review", "s-redo", "--reject", "--db", str(db))
    assert reviewed.exit_code == 0, reviewed.output
    assert assert_status_as_before(db) == redone
    with Warehouse(db) as warehouse:
        rebuild_all(warehouse.conn)
    assert assert_status_as_before(db) == redone


def test_gate_counts_after_a_merge_of_shards(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 6)
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"shard{i}.db")
        run(shards[-1], source, mixed_teacher, "--shard", f"{i}/2")
    target = tmp_path / "merged.db"
    merge_warehouses([str(p) for p in shards], str(target))
    merged = assert_status_as_before(target)
    assert sum(n for _, gate, n in merged if gate == "turn_count") == 2
    single, _ = gate_run(tmp_path, "single.db", 6)
    assert by_gate(single)[0] == merged  # as one run over every shard
    merge_warehouses([str(p) for p in shards], str(target))  # again: adds nothing
    assert assert_status_as_before(target) == merged


def test_verify_finds_a_damaged_gate_count_and_repair_restores_it(tmp_path: Path) -> None:
    db, _ = gate_run(tmp_path, n=3)
    before = by_gate(db)[0]
    with Warehouse(db) as warehouse:
        warehouse.conn.execute("UPDATE gate_rejections SET n = n + 5 WHERE gate = 'turn_count'")
        warehouse.conn.execute("DELETE FROM task_gate_failures WHERE gate = 'vitals'")
    damaged = invoke("verify", "--db", str(db))
    assert damaged.exit_code == 1
    assert "gate_rejections (recipe='consult', gate='turn_count'): n is 6, not 1" in damaged.output
    vitals = "task_gate_failures (recipe='consult', task_key='consult:case-02:v1', gate='vitals')"
    assert vitals in damaged.output
    assert "missing, though the log derives it" in damaged.output
    assert invoke("verify", "--repair", "--db", str(db)).exit_code == 0
    assert assert_status_as_before(db) == before


def test_a_warehouse_from_before_m012_is_filled_when_migrated(tmp_path: Path) -> None:
    db, _ = gate_run(tmp_path, n=3)
    expected = by_gate(db)[0]
    with Warehouse(db) as warehouse:
        conn = warehouse.conn
        for trigger in ("task_heads_gates_insert", "task_heads_gates_update",
                        "task_heads_gates_delete", "task_gate_failures_count_insert",
                        "task_gate_failures_count_delete"):  # fmt: skip
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("DROP TABLE task_gate_failures")
        conn.execute("DROP TABLE gate_rejections")
        conn.execute("DELETE FROM _migrations WHERE name = 'm012_gate_rejections'")
    stale = invoke("status", "--db", str(db))
    assert stale.exit_code != 0 and "migrate" in stale.output
    assert "applied m012_gate_rejections" in invoke("migrate", "--db", str(db)).output
    assert assert_status_as_before(db) == expected


def events_steps(conn, statement: str) -> list[str]:
    """The steps of SQLite's plan for ``statement`` that read `events` (by name, alias or index)."""
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")]
    return [s for s in plan if re.search(r"INDEX events_|^(SCAN|SEARCH) (events|e)\b", s)]


def test_status_reads_no_events_for_its_gate_counts(tmp_path: Path) -> None:
    """Every statement status runs, planned by SQLite: only the skipped-source count reads
    `events`, and only its source_skipped events (by the type index); the gate counts come from
    gate_rejections alone. The trigger finds a task's verdicts by the task index."""
    db, _ = gate_run(tmp_path, n=3)
    statements: list[str] = []
    with Warehouse(db, readonly=True) as warehouse:
        conn = warehouse.conn
        conn.set_trace_callback(statements.append)
        warehouse_status(warehouse)
        conn.set_trace_callback(None)
        selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
        assert len(selects) >= 5, statements
        for statement in selects:
            for step in events_steps(conn, statement):
                assert "source_skipped" in statement, (statement, step)
                assert re.search(r"USING INDEX events_type \(event_type=\?", step), step
        gate_sql = queries.sql("status_gate_rejections")
        gate_plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {gate_sql}")]
        tables = [step for step in gate_plan if step.startswith(("SCAN", "SEARCH"))]
        assert tables == ["SCAN gate_rejections"], gate_plan
        assert events_steps(conn, REFERENCE)  # the rule status used read every task's events
        trigger_lookup = events_steps(
            conn,
            "SELECT 1 FROM events e WHERE e.recipe = 'consult' AND e.task_key = 'k'"
            " AND +e.event_type = 'validation_verdict'",
        )
        assert trigger_lookup == ["SEARCH e USING INDEX events_task (recipe=? AND task_key=?)"]
