"""A worker asks for its next task's claim while the task before it runs. The claims asked
ahead must keep the guarantees of the claims they replace: no task starts on an expired
claim, and a run that stops holds nothing it did not finish."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm import prices
from medstore.llm.openai_backend import OpenAIBackend
from medstore.pipeline.runner import Runner, RunOptions
from medstore.recipes.consult import ConsultRecipe
from medstore.warehouse import queries
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import consult_teacher, write_scenarios
from .test_consult_run import run_args


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_claim_asked_long_ago_is_renewed_before_its_task_starts(tmp_path: Path) -> None:
    # One worker, ~1 s a task (four stages at 0.25 s), a 0.9 s lease: the claim asked for the
    # next task as a task starts has expired by the time that task can start.
    source = write_scenarios(tmp_path / "scenarios.json", 3)
    db = tmp_path / "w.db"
    with serve(latency_s=0.25) as server:
        server.set_responder(consult_teacher)
        args = (*run_args(server, db, source), "--concurrency", "1", "--lease-seconds", "0.9")
        result = invoke(*args)
    assert result.exit_code == 0, result.output
    with Warehouse(db) as warehouse:
        starts = warehouse.query(
            "SELECT id, task_key, created_utc FROM events WHERE event_type = 'task_started'"
            " ORDER BY id"
        )
        assert len(starts) == 3
        for start in starts:
            claims = warehouse.query(
                "SELECT json_extract(payload_json, '$.expires_utc') AS expires FROM events"
                " WHERE event_type = 'task_claimed' AND task_key = ? AND id < ? ORDER BY id",
                (start["task_key"], start["id"]),
            )
            assert claims, f"{start['task_key']} started unclaimed"
            # The claim it started under was live, renewed if need be.
            assert claims[-1]["expires"] > start["created_utc"], start["task_key"]
        renewed_ahead = warehouse.query(
            "SELECT task_key FROM events e WHERE event_type = 'task_started' AND 1 < ("
            "  SELECT count(*) FROM events c WHERE c.event_type = 'task_claimed'"
            "  AND c.task_key = e.task_key AND c.id < e.id)"
        )
    assert len(renewed_ahead) >= 1  # the later tasks' early claims were renewed


def test_a_stopped_run_holds_no_task(tmp_path: Path) -> None:
    """A run stopped by its budget lets go of every task it claimed and did not finish, the
    ones it had asked for ahead included: a second run takes them over at once."""
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps({"fake-model": [2000.0, 8000.0]}))
    source = write_scenarios(tmp_path / "scenarios.json", 10)
    db = tmp_path / "w.db"
    try:
        with serve() as server:
            server.set_responder(consult_teacher)
            common = (*run_args(server, db, source), "--prices", str(prices_file))
            result = invoke(*common, "--concurrency", "3", "--max-cost", "25")
            assert result.exit_code == 0, result.output
            assert "stopped before passing --max-cost" in result.output
            with Warehouse(db) as warehouse:
                [stopped] = warehouse.query("SELECT run_id, finished_utc FROM run_summary")
                # Every task it claimed, started or not (one asked for ahead has no state yet).
                tasks = warehouse.query(
                    "SELECT DISTINCT recipe, task_key FROM events WHERE event_type = 'task_claimed'"
                )
                [ahead] = warehouse.query(
                    "SELECT count(DISTINCT task_key) AS n FROM events c"
                    " WHERE event_type = 'task_claimed' AND NOT EXISTS (SELECT 1 FROM events s"
                    " WHERE s.event_type = 'task_started' AND s.task_key = c.task_key)"
                )
                assert ahead["n"] > 0  # claims asked for ahead, their tasks never started
                conn = warehouse.conn
                held = []
                for task in tasks:
                    lease = queries.select_one(
                        conn, "lease_state", recipe=task["recipe"], task_key=task["task_key"]
                    )
                    if lease["head_type"] == "sample_accepted" or lease["closed"]:
                        continue
                    if lease["expires_utc"] > stopped["finished_utc"]:
                        held.append(task["task_key"])
            assert held == []
            # So another run finishes them without waiting out any lease.
            result = invoke(*common, "--concurrency", "3")
            assert result.exit_code == 0, result.output
        with Warehouse(db) as warehouse:
            accepted = warehouse.query(
                "SELECT count(DISTINCT task_key) AS n FROM events"
                " WHERE event_type = 'sample_accepted'"
            )
        assert accepted[0]["n"] == 10
    finally:
        prices._price_files.clear()
        prices.price_table.cache_clear()


def test_a_long_run_keeps_only_the_tasks_it_is_still_counting(tmp_path: Path) -> None:
    """Finished tasks are counted in the background, by an asyncio task each; once counted,
    those are let go, so a run's memory does not grow with its length. (Counted by their
    coroutine: other tests leave asyncio tasks of their own behind.)"""
    source = write_scenarios(tmp_path / "scenarios.json", 90)
    live: list[int] = []

    async def run_and_watch(runner: Runner) -> None:
        run = asyncio.create_task(runner.run(str(source)))
        while not run.done():
            await asyncio.sleep(0.05)
            live.append(sum(is_counting(o) for o in gc.get_objects()))
        await run

    with serve() as server, Warehouse(tmp_path / "w.db") as warehouse:
        server.set_responder(consult_teacher)
        backend = OpenAIBackend("fake-model", server.openai_base_url)
        runner = Runner(warehouse, ConsultRecipe(), backend, RunOptions(concurrency=3))
        asyncio.run(run_and_watch(runner))
    assert runner.counts["accepted"] == 90
    assert len(live) >= 5  # watched for a while
    # A few countings waiting for their commit; not one per finished task.
    assert max(live) <= 25, live


def is_counting(thing: object) -> bool:
    """An asyncio task that counts a finished task once its events are committed."""
    return (
        isinstance(thing, asyncio.Task)
        and getattr(thing.get_coro(), "__qualname__", "") == "Runner._finish"
    )
