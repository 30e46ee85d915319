"""Soak: a long `consult` run against a faulty teacher, killed with SIGKILL again and again.

The fake server injects 20% HTTP 500, 5% 429 with Retry-After, 5% timeouts, 2.5% truncated
and 2.5% non-JSON bodies, and answers 10% of calls slowly. The runner (a real `cli.py run`
process) is killed with kill -9 at random moments and restarted until a run completes with
nothing left to do. Then every task must be accepted or rejected with a recorded reason, each
accepted exactly once, the samples view must hold one sample per accepted task, and `verify`
must pass. Finally the warehouse is made read-only: the run must fail with one clear line,
change nothing, and resume once it is writable again.

Run: python benchmarks/soak.py [--tasks 300] [--kill-every 2.0] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_core import write_scenarios  # noqa: E402

from medstore.warehouse.store import Warehouse  # noqa: E402
from tests.fakeserver import Reply, serve  # noqa: E402
from tests.teachers import consult_teacher  # noqa: E402

FAULTS = {"500": 0.20, "429": 0.05, "timeout": 0.05, "truncate": 0.025, "garbage": 0.025}
SLOW_SHARE = 0.10


def run_command(base_url: str, db: Path, source: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "cli.py"),
        "run",
        "--recipe",
        "consult",
        "--source",
        str(source),
        "--base-url",
        base_url,
        "--model",
        "fake-model",
        "--db",
        str(db),
        "--concurrency",
        "16",
        "--timeout",
        "1",
        "--retries",
        "4",
        "--retry-base-delay",
        "0.05",
        "--no-progress",
    ]


def states(db: Path) -> dict[str, int]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query("SELECT state, count(*) AS n FROM task_state GROUP BY state")
    return {row["state"]: row["n"] for row in rows}


def soak(tasks: int, kill_every: float, seed: int, folder: Path) -> dict[str, object]:
    rng = random.Random(seed)
    source = folder / "scenarios.json"
    write_scenarios(source, tasks)
    db = folder / "soak.db"
    kills = runs = 0
    started = time.perf_counter()
    with serve(fault_plan=FAULTS, seed=seed, retry_after="0.2", fault_delay_s=1.5) as server:

        def teacher(request: dict) -> Reply:
            delay = rng.uniform(0.2, 0.6) if rng.random() < SLOW_SHARE else 0.0
            return Reply(content=consult_teacher(request), delay_s=delay)

        server.set_responder(teacher)
        while True:
            runs += 1
            process = subprocess.Popen(
                run_command(server.openai_base_url, db, source),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                output, _ = process.communicate(timeout=rng.uniform(0.5, 2) * kill_every)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.communicate()
                kills += 1
                continue
            # A run whose remaining tasks all failed exits 1 (and the next run redoes them).
            if process.returncode != 0 and "Error: every task failed" not in output:
                raise SystemExit(f"run failed (exit {process.returncode}):\n{output}")
            left = {k: v for k, v in states(db).items() if k not in ("accepted", "rejected")}
            if not left and sum(states(db).values()) == tasks:
                break
            if runs > 200:
                raise SystemExit(f"still unfinished after {runs} runs: {left}")
        requests = len(server.chat_requests())
    wall = time.perf_counter() - started
    return {
        "db": db,
        "source": source,
        "kills": kills,
        "runs": runs,
        "requests": requests,
        "wall_s": wall,
    }


def audit(db: Path, tasks: int) -> dict[str, object]:
    with Warehouse(db) as warehouse:
        one = lambda sql: warehouse.query(sql)[0]["n"]  # noqa: E731
        figures = {
            "tasks in source": tasks,
            "tasks accepted": one("SELECT count(*) AS n FROM task_state WHERE state = 'accepted'"),
            "tasks rejected": one("SELECT count(*) AS n FROM task_state WHERE state = 'rejected'"),
            "rejected without a reason": one(
                "SELECT count(*) AS n FROM task_state WHERE state = 'rejected'"
                " AND coalesce(reason, '') = ''"
            ),
            "tasks unfinished": one(
                "SELECT count(*) AS n FROM task_state WHERE state NOT IN ('accepted', 'rejected')"
            ),
            "samples in the dataset": one("SELECT count(*) AS n FROM samples"),
            "tasks accepted twice": one(
                "SELECT count(*) AS n FROM (SELECT task_key FROM events"
                " WHERE event_type = 'sample_accepted' GROUP BY task_key HAVING count(*) > 1)"
            ),
            "runs started": one(
                "SELECT count(*) AS n FROM events WHERE event_type = 'run_started'"
            ),
            "runs finished": one(
                "SELECT count(*) AS n FROM events WHERE event_type = 'run_finished'"
            ),
            "llm errors recorded": one(
                "SELECT count(*) AS n FROM events WHERE event_type = 'llm_error'"
            ),
            "cache replays after kills": one(
                "SELECT count(*) AS n FROM events WHERE event_type = 'cache_replay'"
            ),
            "tasks failed then redone": one(
                "SELECT count(DISTINCT task_key) AS n FROM events WHERE event_type = 'task_failed'"
            ),
        }
        errors = warehouse.query(
            "SELECT json_extract(payload_json, '$.kind') AS kind, count(*) AS n FROM events"
            " WHERE event_type = 'llm_error' GROUP BY 1 ORDER BY 2 DESC"
        )
        report = warehouse.verify()
    figures["errors by kind"] = ", ".join(f"{row['kind']} {row['n']}" for row in errors)
    figures["verify"] = "ok" if report.ok else f"FAILED: {report.problems[:3]}"
    figures["events"] = report.events
    return figures


def read_only_check(db: Path, source: Path) -> dict[str, str]:
    """A read-only warehouse: one clear line, nothing changed; writable again: resume works."""
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    before = db.read_bytes()
    mode = db.stat().st_mode
    folder_mode = db.parent.stat().st_mode
    db.chmod(0o444)
    db.parent.chmod(0o555)  # no -wal or -shm file can be made either
    # root ignores permissions unless it gives up the capability to.
    as_user = (
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    )
    with serve() as server:
        server.set_responder(consult_teacher)
        command = run_command(server.openai_base_url, db, source)
        failed = subprocess.run([*as_user, *command], capture_output=True, text=True)
        unchanged = db.read_bytes() == before
        db.parent.chmod(folder_mode)
        db.chmod(mode)
        resumed = subprocess.run(command, capture_output=True, text=True)
    message = (failed.stderr or failed.stdout).strip().splitlines()
    return {
        "read-only: exit code": str(failed.returncode),
        "read-only: message": message[-1] if message else "",
        "read-only: warehouse unchanged": str(unchanged),
        "writable again: resume exit code": str(resumed.returncode),
        "writable again: verify": "ok" if Warehouse(db).verify().ok else "FAILED",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--kill-every", type=float, default=2.0, help="Mean seconds between kills.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(args.tasks, args.kill_every, args.seed, Path(tmp))
        figures = audit(result["db"], args.tasks)
        figures.update(read_only_check(result["db"], result["source"]))
    print(
        f"\nsoak: {args.tasks} consult tasks (4 calls each), faults {FAULTS}, "
        f"{SLOW_SHARE:.0%} slow answers, kill -9 every ~{args.kill_every:g} s"
    )
    print("| measure | value |")
    print("|---|---:|")
    for name, value in {
        "runner processes started": result["runs"],
        "killed with SIGKILL": result["kills"],
        "requests the server received": result["requests"],
        "wall time, s": f"{result['wall_s']:.0f}",
        **figures,
    }.items():
        print(f"| {name} | {value} |")
    accounted = figures["tasks accepted"] + figures["tasks rejected"]
    print(
        f"\nall accounted: {accounted} of {args.tasks} tasks "
        f"({accounted / args.tasks:.3f}); samples ÷ accepted tasks = "
        f"{figures['samples in the dataset'] / max(1, figures['tasks accepted']):.3f}"
    )


if __name__ == "__main__":
    main()
