"""Ray executor benchmark: one run over W Ray workers against the same run in one process.

`consult` against the fake server (in its own process) with 50 ms latency per request; the local
run has concurrency W × C, the Ray run W workers of concurrency C, so both keep the same number
of calls in flight. Reported: wall time of each (the Ray run's includes starting its actors and
merging the shard logs; ``ray.init`` is measured apart), requests/s, and Ray ÷ local.

Run: python benchmarks/bench_ray.py [--tasks 200] [--workers 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_core import write_scenarios  # noqa: E402
from teacher_process import teacher_process  # noqa: E402

from medstore.llm import BackendOptions  # noqa: E402
from medstore.pipeline.launch import execute, plan_run  # noqa: E402
from medstore.pipeline.options import RunOptions  # noqa: E402
from medstore.recipes.consult import ConsultRecipe  # noqa: E402


def timed_run(base_url: str, source: Path, db: Path, **options: object) -> tuple[float, dict]:
    backend = BackendOptions(base_url=base_url, model="fake-model", timeout=30)
    run = RunOptions(progress=False, retry_base_delay=0.01, **options)
    plan = plan_run(ConsultRecipe(), backend, run, source=str(source))
    started = time.perf_counter()
    result, _ = execute(plan, str(db), say=lambda _line: None)
    return time.perf_counter() - started, dict(result.counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="per Ray worker")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING")
    init_s = time.perf_counter() - started
    requests = args.tasks * 4
    with (
        tempfile.TemporaryDirectory() as tmp,
        teacher_process("teachers:consult_teacher", args.latency) as base_url,
    ):
        source = Path(tmp) / "scenarios.json"
        write_scenarios(source, args.tasks)
        local_s, local = timed_run(
            base_url, source, Path(tmp) / "local.db", concurrency=args.workers * args.concurrency
        )
        ray_s, on_ray = timed_run(
            base_url,
            source,
            Path(tmp) / "ray.db",
            executor="ray",
            workers=args.workers,
            concurrency=args.concurrency,
        )
    ray.shutdown()
    assert local["accepted"] == on_ray["accepted"] == args.tasks, (local, on_ray)
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "requests": requests,
                "in_flight": args.workers * args.concurrency,
                "ray_init_s": round(init_s, 2),
                "local_s": round(local_s, 2),
                "ray_s": round(ray_s, 2),
                "local_requests_per_s": round(requests / local_s, 1),
                "ray_requests_per_s": round(requests / ray_s, 1),
                "ray_over_local_time": round(ray_s / local_s, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
