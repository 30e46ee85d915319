"""Several `run`s on one warehouse share the work: each task is done once, each request is paid
once, and a run that is killed (or stalls) leaves its tasks to the others."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medstore.warehouse.store import Warehouse

from .conftest import REPO
from .fakeserver import serve
from .teachers import consult_teacher, write_scenarios

TASKS = 12


def start_run(server, db: Path, scenarios: Path, *extra: str) -> subprocess.Popen:
    args = [
        sys.executable, str(REPO / "cli.py"), "run", "--recipe", "consult",
        "--source", str(scenarios), "--base-url", server.openai_base_url, "--model", "m",
        "--db", str(db), "--retry-base-delay", "0", "--no-progress", "--concurrency", "2",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "test"}
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ledger(db: Path) -> dict[str, object]:
    with Warehouse(db) as warehouse:
        terminal = warehouse.query(
            "SELECT task_key, count(*) AS n FROM events"
            " WHERE event_type IN ('sample_accepted', 'sample_rejected') GROUP BY task_key"
        )
        paid = warehouse.query(
            "SELECT json_extract(payload_json, '$.request_hash') AS h, count(*) AS n FROM events"
            " WHERE event_type = 'llm_response' GROUP BY h"
        )
        runs = warehouse.query(
            "SELECT DISTINCT run_id FROM events WHERE event_type = 'sample_accepted'"
        )
        ok = warehouse.verify().ok
    return {
        "tasks": len(terminal),
        "done_twice": [row["task_key"] for row in terminal if row["n"] > 1],
        "responses": sum(row["n"] for row in paid),
        "paid_twice": [row["h"] for row in paid if row["n"] > 1],
        "runs_that_accepted": len(runs),
        "verified": ok,
    }


@pytest.mark.parametrize("processes", [2, 4])
def test_runs_on_one_warehouse_share_the_work(tmp_path: Path, processes: int) -> None:
    db = tmp_path / "shared.db"
    scenarios = write_scenarios(tmp_path / "scenarios.json", TASKS)
    with serve(latency_s=0.05) as server:
        server.set_responder(consult_teacher)
        runs = [start_run(server, db, scenarios) for _ in range(processes)]
        outputs = [run.communicate(timeout=180) for run in runs]
        requests = len(server.chat_requests())
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    found = ledger(db)
    assert found["tasks"] == TASKS and found["done_twice"] == []
    assert found["paid_twice"] == [] and requests == found["responses"]
    assert found["runs_that_accepted"] > 1  # the work was shared, not done by one run
    assert found["verified"]
    accepted = sum(int(out.split(" accepted")[0].rsplit(" ", 1)[1]) for out, _ in outputs)
    assert accepted == TASKS


@pytest.mark.parametrize("how", ["kill", "stall"])
def test_a_lost_run_leaves_its_tasks_to_the_others(tmp_path: Path, how: str) -> None:
    """kill -9: the claim's process is gone, so it is taken over at once. A stalled run (SIGSTOP)
    keeps its process: its claims are taken over when they expire."""
    db = tmp_path / "shared.db"
    scenarios = write_scenarios(tmp_path / "scenarios.json", TASKS)
    with serve(latency_s=0.25) as server:  # ~1 s a task: the doomed run is lost mid-way
        server.set_responder(consult_teacher)
        doomed = start_run(server, db, scenarios, "--lease-seconds", "2")
        wait_for(lambda: accepted_by_now(db) >= 2)
        survivor = start_run(server, db, scenarios, "--lease-seconds", "2")
        wait_for(lambda: claims_by_now(db) >= 2)
        doomed.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        _, err = survivor.communicate(timeout=180)
        if how == "stall":
            doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        requests = len(server.chat_requests())
    assert survivor.returncode == 0, err
    found = ledger(db)
    assert found["tasks"] == TASKS and found["done_twice"] == []
    assert found["paid_twice"] == []
    # Only requests in flight when the doomed run was lost can have been sent without an
    # answer reaching the log (at most its concurrency, 2).
    assert 0 <= requests - found["responses"] <= 2
    assert found["verified"]


def accepted_by_now(db: Path) -> int:
    return count(db, "SELECT count(*) FROM events WHERE event_type = 'sample_accepted'")


def claims_by_now(db: Path) -> int:
    return count(
        db, "SELECT count(DISTINCT json_extract(payload_json, '$.owner')) FROM events"
        " WHERE event_type = 'task_claimed'",
    )  # fmt: skip


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)
