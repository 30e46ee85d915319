"""Index benchmark: what each of the warehouse's indexes costs the writer, by dropping it.

For each index of a new warehouse (and once with none dropped), a `hierarchical` run of
``--requests`` rewrites against the fake teacher at 50 ms, in a process of its own
(run_probe.py), on a new warehouse with only that index dropped. Reported: CPU ms per request.
An index whose upkeep were the writer's cost would show as a run cheaper than "(none)"; one that
a read needs (resume, claims, dedup) shows as a dearer run. ``--rounds`` repeats the sweep, so
the spread of "(none)" gives the noise.

Run: python benchmarks/bench_indexes.py [--requests 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from probe_child import run_child  # noqa: E402
from run_probe import write_source  # noqa: E402
from teacher_process import teacher_process  # noqa: E402

from medstore.warehouse.store import Warehouse  # noqa: E402


def new_warehouse(path: str, drop: str | None) -> list[str]:
    """A migrated warehouse at ``path`` without index ``drop``; the names of all its indexes."""
    Warehouse(path)
    conn = sqlite3.connect(path)
    listed = "select name from sqlite_master where type = 'index' and sql is not null"
    names = [row[0] for row in conn.execute(listed)]
    if drop is not None:
        conn.execute(f'drop index "{drop}"')
    conn.commit()
    conn.close()
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        teacher_process("teachers_hierarchical:hierarchical_teacher", 0.05) as base_url,
    ):
        names = new_warehouse(f"{tmp}/probe.db", None)
        figures: dict[str, list[float]] = {}
        for round_ in range(args.rounds):
            for drop in [None, *names]:
                label = drop or "(none)"
                db = f"{tmp}/{label}-{round_}.db"
                new_warehouse(db, drop)
                source = Path(tmp) / f"{label}-{round_}.jsonl"
                write_source("hierarchical", source, args.requests, f"idx{round_}{label}")
                result = run_child("run_probe.py", "--recipe", "hierarchical",
                                   "--source", str(source), "--db", db,
                                   "--base-url", base_url, "--concurrency", "64")  # fmt: skip
                figures.setdefault(label, []).append(result["cpu_ms_per_request"])
    print(f"CPU ms per request, {args.requests} hierarchical rewrites, one index dropped")
    print("| index dropped | " + " | ".join(f"round {r + 1}" for r in range(args.rounds)) + " |")
    print("|---|" + "---:|" * args.rounds)
    for label, values in figures.items():
        print(f"| {label} | " + " | ".join(f"{value:.2f}" for value in values) + " |")


if __name__ == "__main__":
    main()
