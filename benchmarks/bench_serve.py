"""Serve benchmark: page load time of the samples table and of a provenance page.

A synthetic consult-shaped warehouse (task started → three stages of request, response and
verdict, one task in ten with a parse failure and a repair → sample accepted; ~11.5 events per
sample) is written straight through ``Warehouse.append`` in big batches, then served by
``python cli.py serve`` in its own process and read over HTTP. Each page is loaded `--repeats`
times after a warm-up; the median is reported, as a ratio against the same page on a small
warehouse (the baseline, measured in the same run).

Run: python benchmarks/bench_serve.py [--samples 100000] [--baseline-samples 1000]
Warehouses are kept in benchmarks/out/ (git-ignored) and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medstore.warehouse.events import (  # noqa: E402
    Envelope,
    LLMRequest,
    LLMResponse,
    ParseFailed,
    RepairRequested,
    RunFinished,
    RunStarted,
    SampleAccepted,
    TaskStarted,
    ValidationVerdict,
)
from medstore.warehouse.hashing import canonical_json, content_hash, short_hash  # noqa: E402
from medstore.warehouse.store import Warehouse  # noqa: E402

OUT = REPO / "benchmarks" / "out"
STAGES = ("profile", "dialogue", "expert")
LABELS = ("high", "moderate", "low")
SYSTEM_PROMPT = "You are a careful clinician who writes realistic consultations. " * 8
TASKS_PER_BATCH = 5000
TARGET_S = 1.0


# The synthetic warehouse ------------------------------------------------------------------------
def task_events(run_id: str, index: int) -> list[tuple]:
    recipe, task_key = "consult", f"consult:bench-{index:06d}:v1"
    source = {"id": f"bench-{index:06d}", "age": 20 + index % 60, "specialty": "cardiology"}
    events: list[tuple] = [
        (
            TaskStarted(source_id=source["id"], source_record=canonical_json(source)),
            Envelope(run_id=run_id, recipe=recipe, task_key=task_key),
        )
    ]

    def call(stage: str, attempt: int, user: str, output: str) -> None:
        request = LLMRequest(
            backend="openai",
            base_url="http://127.0.0.1:9/v1",
            model="bench-model",
            params={"temperature": 0.7},
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user},
            ],
            request_hash=content_hash(f"{task_key}|{stage}|{attempt}"),
            prompt_template=f"consult/{stage}",
        )
        envelope = Envelope(
            run_id=run_id, recipe=recipe, task_key=task_key, stage=stage, attempt=attempt
        )
        events.append((request, envelope))
        response = LLMResponse(
            request_hash=request.request_hash,
            raw_output=output,
            input_tokens=180 + index % 50,
            output_tokens=90 + index % 70,
            latency_ms=float(200 + (index * 7919 + attempt) % 5000),
            finish_reason="stop",
            model_reported="bench-model",
        )
        events.append((response, envelope))

    for stage in STAGES:
        user = f"Write the {stage} for patient {source['id']} aged {source['age']}."
        output = json.dumps({"stage": stage, "case": source["id"], "note": f"finding {index}"})
        envelope = Envelope(run_id=run_id, recipe=recipe, task_key=task_key, stage=stage)
        if stage == "expert" and index % 10 == 0:
            call(stage, 0, user, "{not json " + source["id"])
            events.append((ParseFailed(errors=["Expecting property name"]), envelope))
            events.append(
                (RepairRequested(repair_attempt=1, errors=["Expecting property name"]), envelope)
            )
            call(stage, 1, user + " Return JSON only.", output)
        else:
            call(stage, 0, user, output)
        events.append((ValidationVerdict(passed=True), envelope))
    sample = {"case_id": source["id"], "risk": LABELS[index % 3], "finding": index}
    digest = content_hash(canonical_json(sample))
    sample_id = "s-" + short_hash(f"{task_key}|{digest}")
    events.append(
        (
            SampleAccepted(
                sample_id=sample_id,
                content_hash=digest,
                sample=canonical_json({"sample_id": sample_id, **sample}),
                label=LABELS[index % 3],
            ),
            Envelope(run_id=run_id, recipe=recipe, task_key=task_key),
        )
    )
    return events


def build_warehouse(samples: int) -> tuple[Path, float]:
    """The cached warehouse with `samples` accepted samples, and the seconds it took to write."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"serve-{samples}.db"
    if path.exists():
        return path, 0.0
    partial = path.with_suffix(".partial")
    for leftover in OUT.glob(partial.name + "*"):
        leftover.unlink()
    started = time.perf_counter()
    run_id = f"bench-run-{samples}"
    with Warehouse(partial) as warehouse:
        warehouse.append(
            [
                (
                    RunStarted(command="bench", config={}, code_version="bench"),
                    Envelope(run_id=run_id, recipe="consult"),
                )
            ]
        )
        for first in range(0, samples, TASKS_PER_BATCH):
            batch = []
            for index in range(first, min(samples, first + TASKS_PER_BATCH)):
                batch.extend(task_events(run_id, index))
            warehouse.append(batch)
        warehouse.append(
            [(RunFinished(status="completed"), Envelope(run_id=run_id, recipe="consult"))]
        )
        warehouse.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    partial.rename(path)
    return path, time.perf_counter() - started


# Serving and timing -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python cli.py serve` on a free port; `startup_s` includes building the search index."""

    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        command = [sys.executable, str(REPO / "cli.py"), "serve", "--db", str(db)]
        command += ["--port", str(self.port), "--review-token", "bench"]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
        )
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}")
            try:
                httpx.get(self.base_url + "/-/versions.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        self.startup_s = time.perf_counter() - self.started

    def close(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


def median_load_s(client: httpx.Client, path: str, repeats: int) -> float:
    response = client.get(path)  # warm-up: page cache, templates
    response.raise_for_status()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times)


def pages(db: Path) -> dict[str, str]:
    """The pages to time; the provenance page is a repaired sample from the middle of the log."""
    database = db.stem
    with Warehouse(db, readonly=True) as warehouse:
        [row] = warehouse.query(
            "SELECT count(*) AS tasks FROM events WHERE event_type = 'task_started'"
        )
        middle = (row["tasks"] // 20) * 10
        [sample] = warehouse.query(
            "SELECT json_extract(payload_json, '$.sample_id') AS sample_id FROM events"
            " WHERE event_type = 'sample_accepted' AND recipe = 'consult' AND task_key = ?",
            (f"consult:bench-{middle:06d}:v1",),
        )
    return {
        "samples table (HTML, 3 facets, count)": f"/{database}/samples",
        "samples table, facet label=high": f"/{database}/samples?label=high",
        "provenance page (HTML)": f"/-/medstore/sample/{sample['sample_id']}",
        "provenance page (JSON)": f"/-/medstore/sample/{sample['sample_id']}.json",
        "events table (HTML)": f"/{database}/events",
        "charts page": "/-/medstore/charts",
    }


def measure(db: Path, repeats: int) -> tuple[dict[str, float], float]:
    server = Server(db)
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            return {
                name: median_load_s(client, path, repeats) for name, path in pages(db).items()
            }, server.startup_s
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--baseline-samples", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    baseline_db, _ = build_warehouse(args.baseline_samples)
    big_db, write_s = build_warehouse(args.samples)
    with Warehouse(big_db, readonly=True) as warehouse:
        [count] = warehouse.query("SELECT count(*) AS n FROM events")
    size_mb = big_db.stat().st_size / 1e6
    written = f"written in {write_s:.0f} s" if write_s else "reused from benchmarks/out"
    print(
        f"warehouse: {args.samples:,} samples, {count['n']:,} events, {size_mb:,.0f} MB ({written})"
    )

    baseline, baseline_startup = measure(baseline_db, args.repeats)
    big, big_startup = measure(big_db, args.repeats)
    width = max(len(name) for name in big)
    print(f"median of {args.repeats} loads over HTTP after a warm-up; baseline = same page on a")
    print(f"{args.baseline_samples:,}-sample warehouse; target < {TARGET_S:.0f} s\n")
    header = f"{'page':<{width}}  {'baseline s':>10}  {'big s':>7}  {'ratio':>6}  target"
    print(header)
    print("-" * len(header))
    for name, seconds in big.items():
        verdict = "ok" if seconds < TARGET_S else "SLOW"
        print(
            f"{name:<{width}}  {baseline[name]:>10.3f}  {seconds:>7.3f}"
            f"  {seconds / baseline[name]:>5.1f}x  {verdict}"
        )
    print(
        f"{'serve start-up (migrate, views, search index)':<{width}}  {baseline_startup:>10.2f}"
        f"  {big_startup:>7.2f}  {big_startup / baseline_startup:>5.1f}x"
    )


if __name__ == "__main__":
    main()
