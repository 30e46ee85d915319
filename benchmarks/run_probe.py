"""One real run in a process of its own, reporting its CPU time and peak memory as JSON.

Used by bench_scale (the same run on warehouses of different sizes) and bench_core (the runner
against a plain aiohttp script). Everything the process does counts: imports, opening the
warehouse, resume's lookup, the run, the writer thread. Source ids carry ``--tag`` so that
no earlier answer in the warehouse is replayed.

``--without log`` and ``--without validation`` take a part of the run away, to measure what it
costs (bench_core's breakdown): the writer then commits the run's own events only (claims are
granted unasked), or the stages keep their parsing but lose their validators. Benchmark only:
nothing in medstore can run this way.

Run: python benchmarks/run_probe.py --db W.db --base-url URL --tasks 400 [--recipe consult]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_source(recipe: str, path: Path, tasks: int, tag: str) -> None:
    """``tasks`` source records whose ids (and so task keys and prompts) carry ``tag``."""
    if recipe == "hierarchical":
        from medstore.recipes.hierarchical import HierarchicalRecipe
        from medstore.sources.base import Task

        shipped = REPO / "data" / "consultations_sample.jsonl"
        # Only the rows the recipe makes tasks of (some have no answer): each is one request.
        reader = HierarchicalRecipe().read_source(str(shipped))
        rows = [item.record["consultation"] for item in reader if isinstance(item, Task)]
        with path.open("w") as out:
            for i in range(tasks):
                row = dict(rows[i % len(rows)])
                row["Description"] = f"{row.get('Description') or ''} ({tag} {i})"
                out.write(json.dumps(row) + "\n")
        return
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_core import write_scenarios

    write_scenarios(path, tasks, prefix=tag)


def without_log() -> None:
    """The writer commits run-level events only: no task's events, claims granted unasked."""
    from medstore.warehouse.writer import GRANTED, Appends, BatchWriter

    apply = BatchWriter._apply

    def run_events_only(self: BatchWriter, conn: object, batch: list) -> list[object]:
        kept = [
            Appends([r for r in item.records if r.envelope.task_key is None], item.future)
            for item in batch
            if isinstance(item, Appends)
        ]
        apply(self, conn, [item for item in kept if item.records])
        return [len(item.records) if isinstance(item, Appends) else GRANTED for item in batch]

    BatchWriter._apply = run_events_only


def count_requests() -> list[int]:
    """Requests sent, counted at the backend."""
    from medstore.llm.openai_backend import OpenAIBackend

    sent = [0]
    complete = OpenAIBackend.complete

    async def counted(self: OpenAIBackend, *args: object, **kwargs: object) -> object:
        sent[0] += 1
        return await complete(self, *args, **kwargs)

    OpenAIBackend.complete = counted
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--recipe", default="consult", choices=("consult", "hierarchical"))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tag", default=f"probe{time.time_ns()}")
    parser.add_argument("--source", type=Path, help="Run this source (made beside --db if not).")
    parser.add_argument("--without", action="append", default=[], choices=("log", "validation"))
    args = parser.parse_args()
    import asyncio
    from dataclasses import replace

    from medstore.llm.openai_backend import OpenAIBackend
    from medstore.pipeline.options import RunOptions
    from medstore.pipeline.runner import Runner
    from medstore.plugins import get_recipe
    from medstore.warehouse.store import Warehouse

    imported = cpu_seconds()
    sent = None
    if "log" in args.without:  # the log's request count is gone with it: count at the backend
        without_log()
        sent = count_requests()
    suffix = ".jsonl" if args.recipe == "hierarchical" else ".json"
    given = args.source is not None and args.source.exists()  # the caller's own source
    source = args.source or args.db.with_name(f"{args.db.name}.{args.tag}{suffix}")
    if not given:
        write_source(args.recipe, source, args.tasks, args.tag)
    with Warehouse(args.db) as warehouse:
        backend = OpenAIBackend("fake-model", args.base_url, timeout=60)
        options = RunOptions(concurrency=args.concurrency, progress=False, retries=3)
        recipe = get_recipe(args.recipe)()
        if "validation" in args.without:
            recipe.stages = tuple(replace(stage, validators=()) for stage in recipe.stages)
        runner = Runner(warehouse, recipe, backend, options)
        run_started = time.perf_counter()
        run_cpu = cpu_seconds()
        result = asyncio.run(runner.run(str(source)))
        run_wall = time.perf_counter() - run_started
        [totals] = warehouse.query(
            "SELECT llm_requests FROM run_totals WHERE run_id = ?", (runner.run_id,)
        )
    if not given:
        source.unlink(missing_ok=True)
    print(
        json.dumps(
            {
                "accepted": result.counts["accepted"],
                "requests": sent[0] if sent else totals["llm_requests"],
                "cpu_s": cpu_seconds(),
                "import_cpu_s": imported,
                "run_cpu_s": cpu_seconds() - run_cpu,
                "run_wall_s": run_wall,
                "wall_s": time.perf_counter() - STARTED,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
