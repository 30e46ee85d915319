"""Scale benchmark: a ~1M-event warehouse, and throughput under a rate limit.

1. ``generate``: a synthetic warehouse shaped like real runs (100k tasks × ~11 events: task
   started, three stages of request → response → verdict, accepted or rejected; every 10th
   task repaired once), written through the ordinary append path (hash chain, blobs).
2. ``queries``: status, resume start-up, provenance, the dataset views, timed against the
   1 s target, on the big warehouse and on a 10× smaller one (the baseline: how time scales).
3. ``throughput``: `consult` against a fake server that admits at most N requests per window
   and answers 429 beyond it. Requests admitted ÷ the most a sliding window allows in that time
   (N at once, then N per window), and requests the server refused.

Run: python benchmarks/bench_scale.py [--tasks 100000] [--keep DIR] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medstore.plugins import get_recipe, recipe_names  # noqa: E402
from medstore.warehouse.events import Envelope, EventRecord  # noqa: E402
from medstore.warehouse.hashing import content_hash, json_hash, short_hash, uuid7  # noqa: E402
from medstore.warehouse.provenance import sample_provenance  # noqa: E402
from medstore.warehouse.status import warehouse_status  # noqa: E402
from medstore.warehouse.store import Warehouse, append_records, connect  # noqa: E402

RECIPE = "consult"
STAGES = ("profile", "dialogue", "expert")
SYSTEM_PROMPT = "You are a careful clinician who writes realistic, safe training material. " * 4
BATCH = 20_000


def record(event_type: str, payload: dict, envelope: Envelope, blobs: dict) -> EventRecord:
    return EventRecord(event_type, payload, envelope, blobs=blobs)


def task_records(run_id: str, index: int, rng: random.Random) -> list[EventRecord]:
    """One task's events, as the runner writes them."""
    key = f"{RECIPE}:synthetic-{index:06d}:v1"
    env = Envelope(run_id, RECIPE, key)
    source = json.dumps({"id": f"synthetic-{index:06d}", "age": 20 + index % 60})
    out = [
        record(
            "task_started",
            {"source_id": f"synthetic-{index:06d}", "source_record_blob": content_hash(source)},
            env,
            {content_hash(source): source},
        )
    ]
    system_hash = content_hash(SYSTEM_PROMPT)
    repaired = index % 10 == 0
    for stage in STAGES:
        attempts = 2 if repaired and stage == "expert" else 1
        for attempt in range(attempts):
            user = f"Write the {stage} for case {index} (attempt {attempt}). " * 3
            request_hash = json_hash([key, stage, attempt])
            stage_env = Envelope(run_id, RECIPE, key, stage, attempt)
            request = record(
                "llm_request",
                {
                    "backend": "openai",
                    "base_url": "http://vllm:8000/v1",
                    "model": "teacher",
                    "params": {"temperature": 0.7, "max_tokens": 1024},
                    "messages": [
                        {"role": "system", "content_blob": system_hash},
                        {"role": "user", "content_blob": content_hash(user)},
                    ],
                    "response_schema": None,
                    "request_hash": request_hash,
                    "prompt_template": f"consult/{stage}",
                    "prompt_template_hash": content_hash(stage),
                },
                stage_env,
                {system_hash: SYSTEM_PROMPT, content_hash(user): user},
            )
            raw = f'{{"stage": "{stage}", "case": {index}, "text": "{"x" * rng.randint(50, 200)}"}}'
            response_env = Envelope(run_id, RECIPE, key, stage, attempt, request.event_id)
            response = record(
                "llm_response",
                {
                    "request_hash": request_hash,
                    "raw_output_blob": content_hash(raw),
                    "input_tokens": rng.randint(200, 400),
                    "output_tokens": rng.randint(100, 300),
                    "latency_ms": 120.0,
                    "finish_reason": "stop",
                    "cost_usd": 0.0002,
                    "model_reported": "teacher",
                },
                response_env,
                {content_hash(raw): raw},
            )
            passed = attempt == attempts - 1
            verdict = record(
                "validation_verdict",
                {"passed": passed, "errors": [] if passed else ["missing field"], "metrics": {}},
                stage_env,
                {},
            )
            out += [request, response, verdict]
            if not passed:
                out.append(
                    record(
                        "repair_requested",
                        {"repair_attempt": 1, "errors": ["missing field"]},
                        Envelope(run_id, RECIPE, key, stage, attempt + 1),
                        {},
                    )
                )
    if index % 13 == 0:
        out.append(
            record(
                "sample_rejected",
                {"reason": "unsafe", "errors": [], "fallback_sample_blob": None},
                env,
                {},
            )
        )
    else:
        sample = json.dumps({"case": index, "label": ["low", "medium", "high"][index % 3]})
        digest = content_hash(sample)
        out.append(
            record(
                "sample_accepted",
                {
                    "sample_id": "s-" + short_hash(f"{key}|{digest}"),
                    "content_hash": digest,
                    "sample_blob": digest,
                    "label": ["low", "medium", "high"][index % 3],
                },
                env,
                {digest: sample},
            )
        )
    return out


def generate(path: Path, tasks: int, runs: int = 10) -> dict[str, float]:
    """Write a synthetic warehouse of ``tasks`` tasks spread over ``runs`` runs."""
    Warehouse(path).close()
    conn = connect(path)
    rng = random.Random(7)
    started = time.perf_counter()
    events = 0
    per_run = -(-tasks // runs)
    for run_number in range(runs):
        run_id = uuid7()
        env = Envelope(run_id, RECIPE)
        pending = [
            record(
                "run_started",
                {"command": "run", "config": {}, "code_version": "bench", "prompt_hashes": {}},
                env,
                {},
            )
        ]
        for index in range(run_number * per_run, min(tasks, (run_number + 1) * per_run)):
            pending += task_records(run_id, index, rng)
            if len(pending) >= BATCH:
                append_records(conn, pending)
                events += len(pending)
                pending = []
        pending.append(
            record("run_finished", {"status": "completed", "counts": {}, "message": None}, env, {})
        )
        append_records(conn, pending)
        events += len(pending)
    conn.execute("PRAGMA optimize")
    conn.close()
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "mb": path.stat().st_size / 1e6}


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall time of ``fn`` (the first call warms the page cache like a user's would)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def query_suite(path: Path) -> dict[str, float]:
    warehouse = Warehouse(path)
    sample_id = warehouse.query("SELECT sample_id FROM samples LIMIT 1 OFFSET 5000")
    sample_id = (
        sample_id[0]["sample_id"]
        if sample_id
        else warehouse.query("SELECT sample_id FROM samples LIMIT 1")[0]["sample_id"]
    )

    def resume_start() -> None:
        opened = Warehouse(path)  # what a restarted run pays: open, migrate check, views check
        opened.finished_tasks(RECIPE)
        opened.answered_request_hashes()
        opened.close()

    suite: dict[str, Callable[[], Any]] = {
        "status": lambda: warehouse_status(warehouse),
        "resume start-up": resume_start,
        "provenance (one sample)": lambda: sample_provenance(warehouse, sample_id),
        "samples: all rows": lambda: warehouse.query("SELECT * FROM samples"),
        "samples: first page": lambda: warehouse.query("SELECT * FROM samples LIMIT 100"),
        "task_state: all rows": lambda: warehouse.query("SELECT * FROM task_state"),
        "run_summary": lambda: warehouse.query("SELECT * FROM run_summary"),
        "llm_calls: one task": lambda: warehouse.query(
            "SELECT * FROM llm_calls WHERE recipe = ? AND task_key = ?",
            (RECIPE, f"{RECIPE}:synthetic-000123:v1"),
        ),
    }
    for name in recipe_names():
        view = get_recipe(name).dataset_view
        if view != "samples":
            suite[f"{view}: all rows"] = lambda view=view: warehouse.query(f"SELECT * FROM {view}")
    results = {name: timed(fn) for name, fn in suite.items()}
    warehouse.close()
    return results


def print_queries(big: dict[str, float], small: dict[str, float], events: tuple[int, int]) -> None:
    print(f"\nquery times: {events[0]:,} events vs baseline {events[1]:,} events (median of 3)")
    print(
        f"| query | {events[1] // 1000}k events | {events[0] // 1000}k events "
        "| ÷ baseline | ÷ 1 s target |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, seconds in big.items():
        base = small[name]
        print(
            f"| {name} | {base * 1000:.1f} ms | {seconds * 1000:.1f} ms "
            f"| {seconds / base:.1f}× | {seconds:.2f} |"
        )


RATE_SERVER = """
import json, sys
sys.path.insert(0, {repo!r})
from tests.fakeserver import serve
from tests.teachers import consult_teacher
with serve(latency_s={latency}, rate_limit=({limit}, {window})) as server:
    server.set_responder(consult_teacher)
    print(server.openai_base_url, flush=True)
    for line in sys.stdin:
        times = server.admitted_times
        print(json.dumps({{"admitted": len(times), "refused": server.rate_limited_count,
                          "span_s": (times[-1] - times[0]) if times else 0.0}}), flush=True)
        server.admitted_times.clear()
        server.rate_limited_count = 0
"""


def throughput(tasks: int, limit: int, window_s: float, latency_s: float) -> list[dict]:
    """consult against a rate-limited server: without our limiter, then with --rpm."""
    import subprocess

    from medstore.llm.openai_backend import OpenAIBackend
    from medstore.pipeline.options import RunOptions
    from medstore.pipeline.runner import Runner
    from medstore.recipes.consult import ConsultRecipe

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_core import write_scenarios

    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RATE_SERVER.format(repo=str(REPO), latency=latency_s, limit=limit, window=window_s),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    base_url = server.stdout.readline().strip()
    allowed_per_s = limit / window_s
    rows = []
    try:
        for label, rpm in (("adaptive concurrency only", None), ("--rpm + adaptive", limit)):
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / "scenarios.json"
                write_scenarios(source, tasks)
                warehouse = Warehouse(Path(tmp) / "w.db")
                options = RunOptions(
                    concurrency=32,
                    progress=False,
                    rpm=rpm,
                    rate_window_s=window_s,
                    retries=20,
                    retry_base_delay=0.05,
                    retry_max_delay=window_s,
                )
                runner = Runner(
                    warehouse, ConsultRecipe(), OpenAIBackend("fake-model", base_url), options
                )
                started = time.perf_counter()
                asyncio.run(runner.run(str(source)))
                wall = time.perf_counter() - started
                warehouse.close()
            server.stdin.write("stats\n")
            server.stdin.flush()
            stats = json.loads(server.stdout.readline())
            rows.append(
                {
                    "mode": label,
                    "accepted": runner.counts["accepted"],
                    "admitted": stats["admitted"],
                    "refused (429)": stats["refused"],
                    "wall_s": wall,
                    "achieved_per_s": stats["admitted"] / wall,
                    # A sliding window admits `limit` at once, then `limit` per window: the most
                    # any client could have had admitted in this time.
                    "allowed": limit + allowed_per_s * wall,
                    "ratio": stats["admitted"] / (limit + allowed_per_s * wall),
                    "lowest concurrency": runner.limiter.stats.lowest_limit,
                }
            )
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    return rows


def print_throughput(rows: list[dict], limit: int, window_s: float) -> None:
    print(
        f"\nthroughput against a server admitting {limit} requests per {window_s:g} s "
        f"({limit / window_s:.0f}/s allowed; beyond it: 429 + Retry-After)"
    )
    print(
        "| mode | tasks accepted | requests admitted | most allowed | refused (429) | wall s "
        "| achieved/s | achieved ÷ allowed | lowest concurrency |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['mode']} | {row['accepted']} | {row['admitted']} | {row['allowed']:.0f} "
            f"| {row['refused (429)']} "
            f"| {row['wall_s']:.1f} | {row['achieved_per_s']:.1f} | {row['ratio']:.3f} "
            f"| {row['lowest concurrency']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Write the warehouses here and keep them.")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rate-limit", type=int, default=100, help="Requests per window.")
    parser.add_argument("--rate-window", type=float, default=2.0, help="Window in seconds.")
    parser.add_argument("--rate-tasks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not args.skip_queries:
            big, small = folder / "scale-big.db", folder / "scale-small.db"
            for path in (big, small):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            made = generate(big, args.tasks)
            made_small = generate(small, max(1, args.tasks // 10))
            print(
                f"generated {made['events']:,} events in {made['seconds']:.0f} s "
                f"({made['events'] / made['seconds']:,.0f} events/s, {made['mb']:.0f} MB)"
            )
            print_queries(
                query_suite(big),
                query_suite(small),
                (int(made["events"]), int(made_small["events"])),
            )
    if not args.skip_throughput:
        rows = throughput(args.rate_tasks, args.rate_limit, args.rate_window, latency_s=0.02)
        print_throughput(rows, args.rate_limit, args.rate_window)


if __name__ == "__main__":
    main()
