"""Recipe benchmark: MEDEC reading and pairing, structure validation, and each recipe's
throughput against the fake teacher at 50 ms latency (ratio to the ideal, as in bench_core).

Run: python benchmarks/bench_recipes.py [--tasks 400] [--concurrency 64] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teacher_process import teacher_process  # noqa: E402

from medstore.checks.structure import check_structure  # noqa: E402
from medstore.llm.openai_backend import OpenAIBackend  # noqa: E402
from medstore.pipeline.options import RunOptions  # noqa: E402
from medstore.pipeline.runner import Runner  # noqa: E402
from medstore.plugins import get_recipe  # noqa: E402
from medstore.sources.base import Task  # noqa: E402
from medstore.sources.medec import MedecPair, default_medec_path, read_medec  # noqa: E402
from medstore.warehouse.store import Warehouse  # noqa: E402

# recipe -> (scripted teacher, extra recipe options)
RECIPES = {
    "medec-cot": ("teachers_medec:medec_teacher", {}),
    "medec-safe": ("teachers_medec:medec_teacher", {"add_reasoning": True}),
    "hierarchical": ("teachers_hierarchical:hierarchical_teacher", {}),
}


def bench_medec_read() -> dict[str, float]:
    folder = default_medec_path().parent
    splits = sorted(folder.glob("MEDEC-MS-*.csv"))
    started = time.perf_counter()
    records = [item for split in splits for item in read_medec(split)]
    elapsed = time.perf_counter() - started
    pairs = sum(isinstance(item, MedecPair) for item in records)
    return {"rows": len(records), "pairs": pairs, "seconds": elapsed}


def hierarchical_answers() -> list[tuple[str, str]]:
    from tests.teachers_hierarchical import good_rewrite

    source = REPO / "data" / "consultations_sample.jsonl"
    doctors = [json.loads(line)["Doctor"] for line in source.read_text().splitlines() if line]
    return [(good_rewrite(text), text) for text in doctors if text and text.strip()]


def bench_structure(rounds: int) -> dict[str, float]:
    answers = hierarchical_answers()
    started = time.perf_counter()
    valid = 0
    for _ in range(rounds):
        for rewrite, original in answers:
            valid += not check_structure(rewrite, original).errors
    elapsed = time.perf_counter() - started
    return {"answers": rounds * len(answers), "valid": valid, "seconds": elapsed}


def repeated_source(name: str, tmp: Path, tasks: int) -> str | None:
    """The shipped source, repeated with fresh ids when the benchmark wants more tasks."""
    if name != "hierarchical":
        return None
    rows = [json.loads(line) for line in (REPO / "data" / "consultations_sample.jsonl").open()]
    path = tmp / "consultations.jsonl"
    with path.open("w") as out:
        for i in range(tasks):
            row = dict(rows[i % len(rows)])
            row["Description"] = f"{row.get('Description') or ''} (copy {i})"
            out.write(json.dumps(row) + "\n")
    return str(path)


def bench_recipe(name: str, tasks: int, concurrency: int, latency: float) -> dict[str, float]:
    responder, extra = RECIPES[name]
    with tempfile.TemporaryDirectory() as tmp:
        source = repeated_source(name, Path(tmp), tasks)
        with (
            teacher_process(responder, latency) as base_url,
            Warehouse(Path(tmp) / "bench.db") as warehouse,
        ):
            recipe = get_recipe(name)(dict(extra))
            planned = [t for t in recipe.read_source(source) if isinstance(t, Task)]
            limit = min(tasks, len(planned))
            backend = OpenAIBackend("fake-model", base_url, timeout=30)
            options = RunOptions(
                concurrency=concurrency,
                progress=False,
                limit=limit,
                retries=3,
                retry_base_delay=0.01,
            )
            runner = Runner(warehouse, recipe, backend, options)
            started = time.perf_counter()
            result = asyncio.run(runner.run(source))
            elapsed = time.perf_counter() - started
            requests = warehouse.conn.execute(
                "SELECT count(*) FROM events WHERE event_type = 'llm_request'"
            ).fetchone()[0]
    ideal = concurrency / latency
    return {
        "tasks": limit,
        "accepted": result.counts.get("accepted", 0),
        "rejected": result.counts.get("rejected", 0),
        "seconds": elapsed,
        "tasks_per_s": limit / elapsed,
        "requests_per_s": requests / elapsed,
        "ratio": requests / elapsed / ideal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--structure-rounds", type=int, default=200)
    args = parser.parse_args()

    medec = bench_medec_read()
    structure = bench_structure(args.structure_rounds)
    print(
        f"MEDEC read + pair, both splits: {medec['rows']} records ({medec['pairs']} pairs) in "
        f"{medec['seconds']:.3f} s ({medec['rows'] / medec['seconds']:,.0f} records/s)"
    )
    print(
        f"structure validation: {structure['answers']} answers in {structure['seconds']:.2f} s "
        f"({structure['answers'] / structure['seconds']:,.0f} answers/s, "
        f"{structure['valid']} valid)"
    )
    ideal = args.concurrency / args.latency
    print(
        f"\nfake teacher: {args.latency * 1000:.0f} ms latency, concurrency {args.concurrency}, "
        f"ideal {ideal:.0f} requests/s"
    )
    print(
        f"{'recipe':<14}{'tasks':>7}{'accepted':>10}{'s':>8}{'tasks/s':>10}{'req/s':>9}{'ratio':>7}"
    )
    for name in RECIPES:
        row = bench_recipe(name, args.tasks, args.concurrency, args.latency)
        print(
            f"{name:<14}{row['tasks']:>7}{row['accepted']:>10}{row['seconds']:>8.2f}"
            f"{row['tasks_per_s']:>10.1f}{row['requests_per_s']:>9.1f}{row['ratio']:>7.2f}"
        )


if __name__ == "__main__":
    main()
