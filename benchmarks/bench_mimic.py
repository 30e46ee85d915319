"""MIMIC benchmark: make-demo, DuckDB cache build (miss) vs. reopen (hit), and packets.

Target: cache build + every packet of a 100-patient demo in under 10 s. The baseline, measured
in the same run, is plain pandas reading every CSV of the demo once (what any packet builder has
to pay at least); the other figures are given as ratios to it.

Run: python benchmarks/bench_mimic.py [--patients 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from medstore.sources.mimic.demo import make_demo  # noqa: E402
from medstore.sources.mimic.duck import MimicDB  # noqa: E402
from medstore.sources.mimic.packet import build_packet, build_packets, packet_json  # noqa: E402
from medstore.sources.mimic.schema import TABLES  # noqa: E402


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo, cache = Path(tmp) / "demo", Path(tmp) / "cache"
        counts, make_s = timed(lambda: make_demo(demo, patients=args.patients, seed=args.seed))
        _, pandas_s = timed(
            lambda: [pd.read_csv(demo / table.file, dtype=str) for table in TABLES.values()]
        )
        db, miss_s = timed(lambda: MimicDB(demo, cache_dir=cache))
        hadm_ids = [r["hadm_id"] for r in db.query("SELECT hadm_id FROM hosp.admissions")]
        packets, batch_s = timed(lambda: build_packets(db, hadm_ids))
        sizes = [len(packet_json(p)) for p in packets.values()]
        singles = []
        for hadm_id in hadm_ids:
            _, seconds = timed(lambda h=hadm_id: build_packet(db, h))
            singles.append(seconds)
        db.close()
        hit, hit_s = timed(lambda: MimicDB(demo, cache_dir=cache))
        assert hit.cache_hit
        hit.close()
    total = miss_s + batch_s
    median_ms = statistics.median(singles) * 1000
    rows = [
        ("baseline: pandas reads every CSV once", pandas_s, 1.0),
        (
            f"make-demo ({args.patients} patients, {counts['hosp.admissions']} admissions)",
            make_s,
            make_s / pandas_s,
        ),
        ("cache build (miss): read, check, materialise", miss_s, miss_s / pandas_s),
        ("cache open (hit)", hit_s, hit_s / pandas_s),
        (f"all {len(hadm_ids)} packets, batched", batch_s, batch_s / pandas_s),
        ("cache build + all packets (target < 10 s)", total, total / pandas_s),
        (f"one packet, median of {len(singles)}", median_ms / 1000, median_ms / 1000 / pandas_s),
    ]
    print(f"{'measure':<58} {'seconds':>9} {'x baseline':>11}")
    for name, seconds, ratio in rows:
        print(f"{name:<58} {seconds:>9.3f} {ratio:>11.2f}")
    print(
        f"per-packet median {median_ms:.1f} ms; cache hit is {miss_s / hit_s:.0f}x faster than a "
        f"miss; packet size median {statistics.median(sizes) / 1024:.1f} KiB; "
        f"{'PASS' if total < 10 else 'FAIL'}: build + packets {total:.2f} s"
    )


if __name__ == "__main__":
    main()
