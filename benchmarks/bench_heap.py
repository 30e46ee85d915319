"""Heap benchmark: what a fixed glibc mmap threshold costs a CPU training step, and what huge pages
give back (medstore/training/heap.py).

Each setting runs in a process of its own (PyTorch reads THP_MEM_ALLOC_ENABLE once, and mallopt
cannot be undone): allocate, fill, double and free a 19 MB float32 tensor (one hidden state of
the bundled model at 2 x 4,096 tokens) ``--rounds`` times on one thread.

Run: python benchmarks/bench_heap.py [--rounds 200] [--megabytes 19]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import ctypes, sys, time
threshold, rounds, megabytes = (int(value) for value in sys.argv[1:4])
if threshold:
    ctypes.CDLL("libc.so.6").mallopt(-3, threshold)  # M_MMAP_THRESHOLD
import torch
torch.set_num_threads(1)
started = time.perf_counter()
for _ in range(rounds):
    block = torch.empty(megabytes * 2**20 // 4)
    block.fill_(1.0)
    doubled = block * 2
    del block, doubled
print(time.perf_counter() - started)
"""

SETTINGS = (  # name, mmap threshold (0: glibc's moving default), THP_MEM_ALLOC_ENABLE
    ("glibc's moving threshold (default)", 0, "0"),
    ("threshold fixed at 64 KiB", 64 * 1024, "0"),
    ("fixed at 64 KiB, huge pages (what train does)", 64 * 1024, "1"),
)


def seconds(threshold: int, huge_pages: str, rounds: int, megabytes: int) -> float:
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": huge_pages}
    argv = [sys.executable, "-c", CHILD, str(threshold), str(rounds), str(megabytes)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=19)
    args = parser.parse_args()
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"{args.rounds} rounds of a {args.megabytes} MB tensor; transparent huge pages: "
          f"{mode.read_text().strip() if mode.exists() else 'unknown'}")  # fmt: skip
    print("| setting | seconds | ÷ default |")
    print("|---|---:|---:|")
    base = None
    for name, threshold, huge_pages in SETTINGS:
        took = seconds(threshold, huge_pages, args.rounds, args.megabytes)
        base = base or took
        print(f"| {name} | {took:.2f} | {took / base:.2f} |")


if __name__ == "__main__":
    main()
