"""Sharded runs and merge: the shards partition the tasks, and merging their warehouses gives
the dataset one run would have given, whatever the order, however often."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.pipeline.shard import Shard, shard_of
from medstore.recipes.consult import ConsultRecipe
from medstore.warehouse.merge import MergeError, merge_warehouses
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import consult_teacher
from .test_consult_run import run_args, write_scenarios

SAMPLE_COLUMNS = "sample_id, recipe, task_key, label, content_hash, sample_json"


def dataset(db: Path) -> list[dict]:
    """The samples view, each sample without the fields that change from run to run."""
    volatile = ConsultRecipe.volatile_fields
    with Warehouse(db) as warehouse:
        rows = warehouse.query(f"SELECT {SAMPLE_COLUMNS} FROM samples ORDER BY sample_id")
    for row in rows:
        sample = json.loads(row["sample_json"])
        row["sample_json"] = {k: v for k, v in sample.items() if k not in volatile}
    return rows


def task_states(db: Path) -> list[dict]:
    with Warehouse(db) as warehouse:
        return warehouse.query("SELECT recipe, task_key, state FROM task_state ORDER BY task_key")


def event_ids(db: Path) -> set[str]:
    with Warehouse(db) as warehouse:
        return {row["event_id"] for row in warehouse.query("SELECT event_id FROM events")}


def cli_ok(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def cli_finished(*args: str) -> str:
    """A run under injected faults: exit 0, or 1 when it says every task failed (issue 14)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0 or (
        result.exit_code == 1 and "Error: every task failed" in result.output
    ), result.output
    return result.output


def test_shards_partition_every_key_exactly_once() -> None:
    keys = [f"consult:case-{i}:v1" for i in range(2000)]
    for count in (1, 2, 3, 7):
        owners = [[s for s in range(count) if Shard(s, count).owns(key)] for key in keys]
        assert all(len(owner) == 1 for owner in owners)  # complete and disjoint
        sizes = [sum(1 for owner in owners if owner == [s]) for s in range(count)]
        assert min(sizes) > len(keys) / count * 0.8  # and roughly even
    assert shard_of("a-key", 5) == shard_of("a-key", 5)  # stable, not Python's salted hash


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1/0", "1", "a/b"])
def test_bad_shard_is_one_clear_line(text: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--shard", text, "--db", str(tmp_path / "w.db")])
    assert result.exit_code == 1
    assert "--shard" in result.output
    assert not (tmp_path / "w.db").exists()


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One single run and three shard runs over the same 12 scenarios."""
    root = tmp_path_factory.mktemp("shards")
    source = write_scenarios(root / "scenarios.json", 12)
    dbs = {"single": root / "single.db", **{f"shard{i}": root / f"shard{i}.db" for i in range(3)}}
    with serve() as server:
        server.set_responder(consult_teacher)
        cli_ok(*run_args(server, dbs["single"], source))
        for i in range(3):
            cli_ok(*run_args(server, dbs[f"shard{i}"], source, "--shard", f"{i}/3"))
    return dbs


def test_shard_runs_split_the_tasks(shard_runs: dict[str, Path]) -> None:
    single = {row["task_key"] for row in task_states(shard_runs["single"])}
    parts = [{row["task_key"] for row in task_states(shard_runs[f"shard{i}"])} for i in range(3)]
    assert len(single) == 12
    assert set().union(*parts) == single
    assert sum(len(part) for part in parts) == 12
    assert all(part for part in parts)


def test_merge_of_shards_equals_a_single_run(shard_runs: dict[str, Path], tmp_path: Path) -> None:
    into = tmp_path / "merged.db"
    output = cli_ok("merge", *(str(shard_runs[f"shard{i}"]) for i in range(3)), "--into", str(into))
    assert "events verified" in output
    assert dataset(into) == dataset(shard_runs["single"])
    assert len(dataset(into)) == 12
    assert task_states(into) == task_states(shard_runs["single"])
    with Warehouse(into) as warehouse:
        assert warehouse.verify().ok
        merged = warehouse.query("SELECT * FROM events WHERE event_type = 'warehouse_merged'")
    assert len(merged) == 1
    shard_events = set().union(*(event_ids(shard_runs[f"shard{i}"]) for i in range(3)))
    assert event_ids(into) == shard_events | {merged[0]["event_id"]}
    sample_id = dataset(into)[0]["sample_id"]
    assert "sample_accepted" in cli_ok("provenance", sample_id, "--db", str(into))


def test_merge_is_idempotent_and_order_independent(
    shard_runs: dict[str, Path], tmp_path: Path
) -> None:
    shards = [str(shard_runs[f"shard{i}"]) for i in range(3)]
    forward, backward, stepwise = tmp_path / "f.db", tmp_path / "b.db", tmp_path / "s.db"
    merge_warehouses(shards, str(forward))
    merge_warehouses(shards[::-1], str(backward))
    for shard in (shards[2], shards[0], shards[1]):
        merge_warehouses([shard], str(stepwise))
    again = merge_warehouses(shards, str(forward))
    assert again.added_events == 0 and again.added_blobs == 0
    assert dataset(forward) == dataset(backward) == dataset(stepwise)
    # Merging all at once interleaves by time, so the order of the arguments does not show.
    with Warehouse(forward) as a, Warehouse(backward) as b:
        order = "SELECT event_id FROM events WHERE event_type != 'warehouse_merged' ORDER BY id"
        assert a.query(order) == b.query(order)
    # A merged warehouse merges into another one without duplicating anything.
    merge_warehouses([str(forward), str(backward)], str(stepwise))
    assert dataset(stepwise) == dataset(shard_runs["single"])
    with Warehouse(stepwise) as warehouse:
        assert warehouse.verify().ok


def test_merge_refuses_a_tampered_source(shard_runs: dict[str, Path], tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.db"
    tampered.write_bytes(shard_runs["shard0"].read_bytes())
    conn = sqlite3.connect(tampered)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET payload_json = '{}' WHERE id = 3")
    conn.commit()
    conn.close()
    into = tmp_path / "into.db"
    result = CliRunner().invoke(cli, ["merge", str(tampered), "--into", str(into)])
    assert result.exit_code == 1
    assert "does not verify" in result.output
    assert not into.exists()
    with pytest.raises(MergeError, match="no such warehouse"):
        merge_warehouses([str(tmp_path / "missing.db")], str(into))


# The definitions the derived tables and indexes replaced (m004, m005): the views must still
# say exactly what these say.
WINDOW_TASK_STATE = """
WITH ranked AS (
    SELECT recipe, task_key, id, run_id, event_type, created_utc,
        json_extract(payload_json, '$.reason') AS reason,
        json_extract(payload_json, '$.sample_id') AS sample_id,
        json_extract(payload_json, '$.validator_version') AS validator_version,
        row_number() OVER (PARTITION BY recipe, task_key ORDER BY id DESC) AS recency
    FROM events
    WHERE event_type IN ('task_started', 'sample_accepted', 'sample_rejected', 'task_failed')
)
SELECT recipe, task_key,
    CASE event_type WHEN 'sample_accepted' THEN 'accepted' WHEN 'sample_rejected' THEN 'rejected'
        WHEN 'task_failed' THEN 'failed' ELSE 'pending' END AS state,
    reason, sample_id, validator_version, run_id AS last_run_id, created_utc AS updated_utc
FROM ranked WHERE recency = 1 ORDER BY recipe, task_key
"""
SCAN_RUN_SUMMARY = """
SELECT e.run_id,
    max(CASE WHEN e.event_type = 'run_started' THEN e.recipe END) AS recipe,
    min(e.created_utc) AS started_utc,
    max(CASE WHEN e.event_type = 'run_finished' THEN e.created_utc END) AS finished_utc,
    coalesce(max(CASE WHEN e.event_type = 'run_finished'
        THEN json_extract(e.payload_json, '$.status') END), 'running or crashed') AS status,
    sum(e.event_type = 'task_started') AS tasks_started,
    sum(e.event_type = 'sample_accepted') AS accepted,
    sum(e.event_type = 'sample_rejected') AS rejected,
    sum(e.event_type = 'task_failed') AS failed,
    sum(e.event_type = 'source_skipped') AS source_skipped,
    sum(e.event_type = 'llm_request') AS llm_requests,
    sum(e.event_type = 'llm_response') AS llm_responses,
    sum(e.event_type = 'cache_replay') AS cache_replays,
    sum(e.event_type = 'llm_error') AS llm_errors,
    sum(e.event_type = 'repair_requested') AS repairs,
    coalesce(sum(CASE WHEN e.event_type = 'llm_response'
        THEN json_extract(e.payload_json, '$.input_tokens') END), 0) AS input_tokens,
    coalesce(sum(CASE WHEN e.event_type = 'llm_response'
        THEN json_extract(e.payload_json, '$.output_tokens') END), 0) AS output_tokens,
    round(coalesce(sum(CASE WHEN e.event_type = 'llm_response'
        THEN json_extract(e.payload_json, '$.cost_usd') END), 0), 6) AS cost_usd,
    (SELECT json_group_object(reason, n) FROM (
        SELECT json_extract(f.payload_json, '$.reason') AS reason, count(*) AS n
        FROM events f WHERE f.run_id = e.run_id
          AND f.event_type IN ('sample_rejected', 'task_failed', 'source_skipped')
        GROUP BY 1)) AS failures_by_reason_json
FROM events e WHERE e.run_id IS NOT NULL GROUP BY e.run_id ORDER BY e.run_id
"""

SCAN_PROVENANCE = """
SELECT s.sample_id, e.id, e.event_id, e.event_type
FROM (
    SELECT DISTINCT json_extract(payload_json, '$.sample_id') AS sample_id, recipe, task_key
    FROM events WHERE event_type = 'sample_accepted'
) s
JOIN events e ON e.recipe = s.recipe AND e.task_key = s.task_key
WHERE e.event_type != 'task_claimed'  -- runs' claims are coordination, not provenance
ORDER BY s.sample_id, e.id
"""


def test_derived_views_say_what_a_scan_of_the_log_says(
    shard_runs: dict[str, Path], tmp_path: Path
) -> None:
    """task_state, run_summary and the answered-request set after faults, repairs, rejections,
    a resume, and a merge (whose inserts update the same projections)."""
    source = write_scenarios(tmp_path / "scenarios.json", 6)
    db = tmp_path / "faulty.db"
    with serve(fault_plan={"500": 0.3}, seed=3) as server:
        server.set_responder(consult_teacher)
        cli_finished(*run_args(server, db, source, "--retries", "0", "--limit", "4"))
        cli_finished(*run_args(server, db, source, "--retries", "1"))
    into = tmp_path / "merged.db"
    merge_warehouses([str(db), *(str(shard_runs[f"shard{i}"]) for i in range(3))], str(into))
    older = tmp_path / "older.db"  # as a warehouse written before m005 was released
    older.write_bytes(into.read_bytes())
    conn = sqlite3.connect(older)
    for trigger in ("run_totals_count", "run_failures_count", "answered_requests_add"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in ("run_totals", "run_failures", "answered_requests"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute(
        "DELETE FROM _migrations"
        " WHERE name IN ('m005_run_totals', 'm006_projections_in_the_writer')"
    )
    conn.commit()
    conn.close()
    for path in (db, into, older):
        with Warehouse(path) as warehouse:
            assert warehouse.query(WINDOW_TASK_STATE) == warehouse.query(
                "SELECT * FROM task_state ORDER BY recipe, task_key"
            )
            summary = warehouse.query("SELECT * FROM run_summary ORDER BY run_id")
            assert summary == warehouse.query(SCAN_RUN_SUMMARY)
            answered = warehouse.query(
                "SELECT DISTINCT json_extract(payload_json, '$.request_hash') AS h FROM events"
                " WHERE event_type IN ('llm_response', 'cache_replay')"
            )
            assert warehouse.answered_request_hashes() == {row["h"] for row in answered}
            assert warehouse.query(SCAN_PROVENANCE) == warehouse.query(
                "SELECT sample_id, id, event_id, event_type FROM provenance ORDER BY sample_id, id"
            )
    assert any(run["failed"] for run in summary)  # the faults did show
