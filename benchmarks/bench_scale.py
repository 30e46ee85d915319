"""Scale benchmark: a 10M-event warehouse against a 100k one, and throughput under a rate limit.

1. A synthetic warehouse of ``--events`` events (default 10M) and one of ``--baseline-events``
   (100k), written straight into the real schema by ``scale_warehouse.py`` and cached in
   ``--cache`` (default /tmp/medstore-scale) for later runs.
2. What users wait for, on both, median of 3 after a warm-up: ``status``, resume's start-up
   (open the warehouse, look up which of a 10,000-task source are finished), ``samples``
   (the first 50), one sample's provenance, and Datasette table pages (samples with its facets
   and count, task_state, events, run_summary) through Datasette's own client.
3. A real ``consult`` run of ``--run-tasks`` tasks on an empty warehouse and on both, each in a
   process of its own (run_probe.py) against the fake teacher: peak RSS and CPU per request.
   These runs add their events to the cached warehouses (new task ids each time).
4. ``throughput``: `consult` against a fake server that admits at most N requests per window
   and answers 429 beyond it. Requests admitted ÷ the most a sliding window allows in that time
   (N at once, then N per window), and requests the server refused.

Run: python benchmarks/bench_scale.py [--events 10000000] [--baseline-events 100000]
     [--cache DIR] [--run-tasks 400] [--skip-runs] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import scale_warehouse  # noqa: E402
from teacher_process import teacher_process  # noqa: E402

from medstore.warehouse.provenance import sample_provenance  # noqa: E402
from medstore.warehouse.samples import QueueFilter, list_samples  # noqa: E402
from medstore.warehouse.status import warehouse_status  # noqa: E402
from medstore.warehouse.store import Warehouse  # noqa: E402

RECIPE = "consult"
RESUME_SOURCE_TASKS = 10_000
PAGES = (
    "/{db}/samples",
    "/{db}/samples.json?_facet=label",
    "/{db}/task_state",
    "/{db}/events",
    "/{db}/run_summary",
)


def warehouse_for(folder: Path, events: int) -> tuple[Path, dict | None]:
    """The cached warehouse of ``events`` events, made if missing."""
    path = scale_warehouse.cached_path(folder, events)
    if path.exists():
        return path, None
    folder.mkdir(parents=True, exist_ok=True)
    return path, scale_warehouse.generate(path, events)


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall time of ``fn`` (the first call warms the page cache like a user's would)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def resume_keys(warehouse: Warehouse) -> tuple[list[str], int]:
    """A source of RESUME_SOURCE_TASKS tasks: up to half of them finished in the warehouse, the
    rest new; and how many are finished."""
    done = [
        row["task_key"]
        for row in warehouse.query(
            "SELECT task_key FROM task_heads WHERE recipe = ? AND state IN ('accepted', 'rejected')"
            " LIMIT ?",
            (RECIPE, RESUME_SOURCE_TASKS // 2),
        )
    ]
    new = [f"{RECIPE}:new-{i}:v1" for i in range(RESUME_SOURCE_TASKS - len(done))]
    return done + new, len(done)


def query_suite(path: Path) -> dict[str, float]:
    warehouse = Warehouse(path)
    some = warehouse.query("SELECT sample_id FROM samples LIMIT 1 OFFSET 2000")
    sample_id = (some or warehouse.query("SELECT sample_id FROM samples LIMIT 1"))[0]["sample_id"]
    keys, finished_keys = resume_keys(warehouse)

    def resume_start() -> None:
        opened = Warehouse(path)  # what a restarted run pays: open, migrate check, views check
        finished = opened.finished_tasks(RECIPE, keys)
        assert len(finished) == finished_keys, (len(finished), finished_keys)
        opened.close()

    suite: dict[str, Callable[[], Any]] = {
        "status": lambda: warehouse_status(warehouse),
        f"resume start-up ({RESUME_SOURCE_TASKS:,}-task source)": resume_start,
        "samples (first 50)": lambda: list_samples(warehouse, QueueFilter(), 50),
        "provenance (one sample)": lambda: sample_provenance(warehouse, sample_id),
        "llm_calls: one task": lambda: warehouse.query(
            "SELECT * FROM llm_calls WHERE recipe = ? AND task_key = ?",
            (RECIPE, f"{RECIPE}:synthetic-0000123:v1"),
        ),
    }
    results = {name: timed(fn) for name, fn in suite.items()}
    warehouse.close()
    results.update(datasette_pages(path))
    return results


def datasette_pages(path: Path) -> dict[str, float]:
    """Table pages as `serve` shows them, through Datasette's own (in-process) client.

    The full-text search index that `serve` builds on its first start (once; later starts only
    catch up) is not built here: none of these pages reads it, and at 10M events its one-time
    build would dominate the benchmark."""
    from medstore.serve import app
    from medstore.serve.metadata import database_name

    app.refresh_search_index = lambda path: 0
    datasette = app.make_datasette(path)
    database = database_name(str(path))

    async def load(url: str) -> None:
        response = await datasette.client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])

    async def suite() -> dict[str, float]:
        results = {}
        for page in PAGES:
            url = page.format(db=database)
            await load(url)  # warm-up
            times = []
            for _ in range(3):
                started = time.perf_counter()
                await load(url)
                times.append(time.perf_counter() - started)
            results[f"Datasette {page.format(db='…')}"] = statistics.median(times)
        return results

    return asyncio.run(suite())


def print_queries(big: dict[str, float], small: dict[str, float], events: tuple[int, int]) -> None:
    print(f"\nquery times: {events[0]:,} events vs baseline {events[1]:,} events (median of 3)")
    print(f"| query | {events[1]:,} events | {events[0]:,} events | ÷ baseline | under 1 s |")
    print("|---|---:|---:|---:|---|")
    for name, seconds in big.items():
        base = small[name]
        print(
            f"| {name} | {base * 1000:.1f} ms | {seconds * 1000:.1f} ms "
            f"| {seconds / base:.1f}× | {'yes' if seconds < 1 else 'NO'} |"
        )


def probe_runs(paths: dict[str, Path | None], tasks: int, latency: float) -> dict[str, dict]:
    """One consult run of ``tasks`` tasks per warehouse, each in its own process."""
    from probe_child import run_child

    results = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        teacher_process("teachers:consult_teacher", latency) as base_url,
    ):
        for name, path in paths.items():
            db = path or Path(tmp) / "empty.db"
            results[name] = run_child(
                "run_probe.py", "--db", str(db), "--base-url", base_url, "--tasks", str(tasks),
                "--source", f"{tmp}/{name}.json".replace(" ", "_"),
            )  # fmt: skip
    return results


def print_runs(runs: dict[str, dict], tasks: int) -> None:
    empty = runs["empty warehouse"]
    print(f"\na consult run of {tasks} tasks ({tasks * 4} requests), a process of its own:")
    print("| warehouse | accepted | CPU ms/request | ÷ empty | peak RSS MB | ÷ empty | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in runs.items():
        print(
            f"| {name} | {row['accepted']} | {row['cpu_ms_per_request']:.2f} "
            f"| {row['cpu_ms_per_request'] / empty['cpu_ms_per_request']:.2f} "
            f"| {row['peak_rss_mb']:.0f} | {row['peak_rss_mb'] / empty['peak_rss_mb']:.2f} "
            f"| {row['wall_s']:.1f} |"
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
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--baseline-events", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/medstore-scale"))
    parser.add_argument("--run-tasks", type=int, default=400)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-runs", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--rate-limit", type=int, default=100, help="Requests per window.")
    parser.add_argument("--rate-window", type=float, default=2.0, help="Window in seconds.")
    parser.add_argument("--rate-tasks", type=int, default=200)
    args = parser.parse_args()
    sizes = {"baseline": args.baseline_events, "big": args.events}
    paths = {}
    for role, events in sizes.items():
        paths[role], made = warehouse_for(args.cache, events)
        if made is not None:
            print(
                f"generated {made['events']:,} events in {made['seconds']:.0f} s "
                f"({made['mb']:,.0f} MB)"
            )
        if role == "baseline" and made is not None:
            with Warehouse(paths[role]) as check:  # one block, so its chain must verify
                report = check.verify()
                print(f"verify on the baseline: {'ok' if report.ok else report.problems[:3]}")
    counts = {}
    for role, path in paths.items():
        with Warehouse(path) as opened:
            counts[role] = opened.select_one("status_sizes")["events"]
    if not args.skip_queries:
        print_queries(
            query_suite(paths["big"]),
            query_suite(paths["baseline"]),
            (counts["big"], counts["baseline"]),
        )
    if not args.skip_runs:
        runs = probe_runs(
            {
                "empty warehouse": None,
                f"{counts['baseline']:,} events": paths["baseline"],
                f"{counts['big']:,} events": paths["big"],
            },
            args.run_tasks,
            latency=0.05,
        )
        print_runs(runs, args.run_tasks)
    if not args.skip_throughput:
        rows = throughput(args.rate_tasks, args.rate_limit, args.rate_window, latency_s=0.02)
        print_throughput(rows, args.rate_limit, args.rate_window)


if __name__ == "__main__":
    main()
