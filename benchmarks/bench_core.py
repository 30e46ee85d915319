"""Core benchmark: runner throughput against a slow teacher, and the cost of the event log.

1. `consult` against the fake server (in its own process) with 50 ms latency per request:
   2,000 requests at concurrency 64. Achieved requests/s ÷ ideal (concurrency ÷ latency).
2. CPU per request: `hierarchical` run by medstore (run_probe.py) and the same job as a plain
   asyncio + aiohttp script (plain_client.py), each in a process of its own against one fake
   server, in the same run, alternated ``--cpu-repeats`` times (the lowest of each is kept).
   Everything each process does counts: start-up and imports too. With ``--breakdown``, the
   medstore run is repeated without its validators, without its log, and without both
   (run_probe.py ``--without``): what is left when neither is there is the runner's own floor.
3. Appending events in batches (hash chain, blobs) vs. a plain executemany of the same rows.

Run: python benchmarks/bench_core.py [--requests 2000] [--concurrency 64] [--latency 0.05]
     [--cpu-requests 2000] [--cpu-repeats 3] [--breakdown] [--skip-append]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teacher_process import teacher_process  # noqa: E402

from medstore.llm.openai_backend import OpenAIBackend  # noqa: E402
from medstore.pipeline.options import RunOptions  # noqa: E402
from medstore.pipeline.runner import Runner  # noqa: E402
from medstore.recipes.consult import ConsultRecipe  # noqa: E402
from medstore.warehouse.events import Envelope, LLMResponse, make_record  # noqa: E402
from medstore.warehouse.store import Warehouse, append_records, connect  # noqa: E402


def write_scenarios(path: Path, n: int, prefix: str = "bench") -> None:
    path.write_text(
        json.dumps(
            [
                {
                    "id": f"{prefix}-{i:05d}",
                    "specialty": "cardiology",
                    "age": 40 + i % 40,
                    "sex": "male" if i % 2 else "female",
                    "symptoms": ["chest pain"],
                    "risk_factors": [],
                    "background": f"Emergency department, visit {i} ({prefix}).",  # no two alike
                }
                for i in range(n)
            ]
        )
    )


def bench_runner(requests: int, concurrency: int, latency: float) -> dict[str, float]:
    tasks = requests // 4  # consult makes 4 calls per task
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "scenarios.json"
        write_scenarios(source, tasks)
        with (
            teacher_process("teachers:consult_teacher", latency) as base_url,
            Warehouse(Path(tmp) / "bench.db") as warehouse,
        ):
            backend = OpenAIBackend("fake-model", base_url, timeout=30)
            options = RunOptions(
                concurrency=concurrency,
                progress=False,
                retries=3,
                retry_base_delay=0.01,
            )
            runner = Runner(warehouse, ConsultRecipe(), backend, options)
            started = time.perf_counter()
            result = asyncio.run(runner.run(str(source)))
            elapsed = time.perf_counter() - started
            events = warehouse.conn.execute("SELECT count(*) FROM events").fetchone()[0]
            assert result.counts["accepted"] == tasks, result.counts
    achieved = requests / elapsed
    ideal = concurrency / latency
    return {
        "seconds": elapsed,
        "requests_per_s": achieved,
        "ideal_per_s": ideal,
        "ratio": achieved / ideal,
        "events": events,
        "events_per_s": events / elapsed,
    }


def bench_bare_client(requests: int, concurrency: int, latency: float) -> float:
    """Requests/s of a bare aiohttp client against the same server: no events, no validation.
    On a small machine the server shares the CPU, so this, not concurrency ÷ latency, is the
    most any client could get here."""
    import aiohttp

    body = {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "You are a clinician."},
            {"role": "user", "content": "Write the patient profile: age (40), sex (male)."},
        ],
    }

    async def run(base_url: str) -> float:
        gate = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one() -> None:
                async with gate, session.post(f"{base_url}/chat/completions", json=body) as reply:
                    await reply.read()

            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
            return requests / (time.perf_counter() - started)

    with teacher_process("teachers:consult_teacher", latency) as base_url:
        return asyncio.run(run(base_url))


# The breakdown's runs: what run_probe.py takes away from the medstore run.
WITHOUT = {
    "medstore run, no validators": ("--without", "validation"),
    "medstore run, no log": ("--without", "log"),
    "medstore run, no log, no validators": ("--without", "log", "--without", "validation"),
}


def bench_cpu(
    requests: int, concurrency: int, latency: float, repeats: int, breakdown: bool = False
) -> dict[str, dict]:
    """CPU per request of medstore's `hierarchical` run and of the plain script, side by side
    (and, with ``breakdown``, of the run with parts taken away)."""
    from probe_child import run_child
    from run_probe import write_source

    best: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        teacher_process("teachers_hierarchical:hierarchical_teacher", latency) as base_url,
    ):
        for repeat in range(repeats):
            source = Path(tmp) / f"source-{repeat}.jsonl"
            write_source("hierarchical", source, requests, f"cpu{repeat}")
            commands = {
                "plain asyncio + aiohttp script": [
                    "plain_client.py", "--source", str(source), "--out", f"{tmp}/out{repeat}.jsonl",
                ],
                "medstore run (hierarchical)": [
                    "run_probe.py", "--recipe", "hierarchical", "--source", str(source),
                    "--db", f"{tmp}/w{repeat}.db",
                ],
            }  # fmt: skip
            if breakdown:
                probe = commands["medstore run (hierarchical)"]
                for name, without in WITHOUT.items():
                    commands[name] = [*probe[:-1], f"{tmp}/w{repeat}-{len(commands)}.db", *without]
            for name, command in commands.items():
                figures = run_child(
                    *command, "--base-url", base_url, "--concurrency", str(concurrency)
                )
                if name not in best or figures["cpu_s"] < best[name]["cpu_s"]:
                    best[name] = figures
    return best


def print_cpu(cpu: dict[str, dict], requests: int) -> None:
    plain = cpu["plain asyncio + aiohttp script"]
    print(f"\nCPU per request, {requests} hierarchical rewrites (lowest of the repeats):")
    print("| process | requests | CPU s | CPU ms/request | ÷ plain | requests/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in cpu.items():
        print(
            f"| {name} | {row['requests']} | {row['cpu_s']:.2f} | "
            f"{row['cpu_ms_per_request']:.2f} | "
            f"{row['cpu_ms_per_request'] / plain['cpu_ms_per_request']:.2f} | "
            f"{row['requests'] / row['run_wall_s']:.0f} | {row['peak_rss_mb']:.0f} |"
        )
    run = cpu["medstore run (hierarchical)"]
    print(f"(medstore: {run['import_cpu_s']:.2f} s of its CPU is start-up and imports)")


def sample_records(n: int) -> list:
    envelope = Envelope(run_id="bench", recipe="consult", task_key="consult:x:v1", stage="expert")
    return [
        make_record(
            LLMResponse(
                request_hash=f"b2:{i:064x}",
                raw_output=f"output number {i} " * 20,
                input_tokens=900,
                output_tokens=300,
                latency_ms=50.0,
                finish_reason="stop",
            ),
            envelope,
        )
        for i in range(n)
    ]


def bench_append(n: int, batch: int) -> dict[str, float]:
    records = sample_records(n)
    with tempfile.TemporaryDirectory() as tmp:
        Warehouse(Path(tmp) / "log.db").close()
        conn = connect(Path(tmp) / "log.db")
        started = time.perf_counter()
        for offset in range(0, n, batch):
            append_records(conn, records[offset : offset + batch])
        log_s = time.perf_counter() - started
        conn.close()

        plain = sqlite3.connect(Path(tmp) / "plain.db", isolation_level=None)
        plain.execute("PRAGMA journal_mode = WAL")
        plain.execute("PRAGMA synchronous = NORMAL")
        plain.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, "
            "event_type TEXT, payload_json TEXT, created_utc TEXT)"
        )
        plain.execute("CREATE TABLE blobs (hash TEXT PRIMARY KEY, content TEXT)")
        rows = [(r.event_id, r.event_type, json.dumps(r.payload), r.created_utc) for r in records]
        blob_rows = [item for r in records for item in r.blobs.items()]
        started = time.perf_counter()
        for offset in range(0, n, batch):
            plain.execute("BEGIN")
            plain.executemany(
                "INSERT OR IGNORE INTO blobs VALUES (?, ?)", blob_rows[offset : offset + batch]
            )
            plain.executemany(
                "INSERT INTO events (event_id, event_type, payload_json, created_utc)"
                " VALUES (?, ?, ?, ?)",
                rows[offset : offset + batch],
            )
            plain.execute("COMMIT")
        plain_s = time.perf_counter() - started
        plain.close()
    return {
        "events": n,
        "log_events_per_s": n / log_s,
        "plain_events_per_s": n / plain_s,
        "ratio": plain_s / log_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--append-events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--cpu-requests", type=int, default=2000)
    parser.add_argument("--cpu-repeats", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--skip-append", action="store_true")
    args = parser.parse_args()

    cpu = bench_cpu(
        args.cpu_requests, args.concurrency, args.latency, args.cpu_repeats, args.breakdown
    )
    runner = bench_runner(args.requests, args.concurrency, args.latency)
    bare = bench_bare_client(args.requests, args.concurrency, args.latency)
    append = None if args.skip_append else bench_append(args.append_events, args.batch)
    print(f"{'measure':<44}{'value':>14}{'baseline':>14}{'ratio':>8}")
    print(
        f"{'runner requests/s (consult, fake server)':<44}{runner['requests_per_s']:>14.1f}"
        f"{runner['ideal_per_s']:>14.1f}{runner['ratio']:>8.2f}"
    )
    print(f"{'  (baseline = concurrency / latency)':<44}")
    print(
        f"{'runner requests/s vs a bare aiohttp client':<44}{runner['requests_per_s']:>14.1f}"
        f"{bare:>14.1f}{runner['requests_per_s'] / bare:>8.2f}"
    )
    bare_note = f"  (bare client: {bare / runner['ideal_per_s']:.2f} of the ideal)"
    print(f"{bare_note:<44}")
    print(f"{'runner events committed/s':<44}{runner['events_per_s']:>14.1f}{'':>14}{'':>8}")
    if append is not None:
        print_append(append, args.batch)
    print(
        f"\n{args.requests} requests, concurrency {args.concurrency}, latency "
        f"{args.latency * 1000:.0f} ms: {runner['seconds']:.2f} s, {runner['events']} events"
    )
    print_cpu(cpu, args.cpu_requests)


def print_append(append: dict[str, float], batch: int) -> None:
    print(
        f"{'log append events/s (batches of ' + str(batch) + ')':<44}"
        f"{append['log_events_per_s']:>14.0f}{append['plain_events_per_s']:>14.0f}"
        f"{append['ratio']:>8.2f}"
    )
    print(f"{'  (baseline = plain executemany, no chain)':<44}")


if __name__ == "__main__":
    main()
