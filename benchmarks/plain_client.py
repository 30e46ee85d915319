"""The hierarchical job as a plain asyncio + aiohttp script: the baseline for the runner's CPU.

It does the least a script could: read the source, fill the same prompt, send each request (64
at a time), take the answer's text out of the reply and append it to a JSONL file. No events,
no validation, no retries, no resume. Run in a process of its own, it reports its CPU time and
peak memory as JSON, like run_probe.py.

Run: python benchmarks/plain_client.py --base-url URL --source S.jsonl --out OUT.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from string import Template

import aiohttp

REPO = Path(__file__).resolve().parent.parent
PROMPT = REPO / "prompts" / "hierarchical" / "rewrite.md"


def load_prompt() -> tuple[str, Template]:
    text = PROMPT.read_text()
    system = text.split("## system\n", 1)[1].split("## user\n", 1)[0].strip()
    user = text.split("## user\n", 1)[1].strip()
    return system, Template(user)


async def run(base_url: str, source: Path, out: Path, concurrency: int) -> int:
    system, user = load_prompt()
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    gate = asyncio.Semaphore(concurrency)
    done = 0
    with out.open("w") as sink:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one(row: dict) -> None:
                nonlocal done
                prompt = user.safe_substitute(
                    description=(row.get("Description") or "").strip(),
                    patient=(row.get("Patient") or "").strip(),
                    doctor=(row.get("Doctor") or "").strip(),
                )
                body = {
                    "model": "fake-model",
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": prompt},
                    ],
                    "temperature": 0.7,
                    "max_tokens": 1024,
                }
                async with gate, session.post(f"{base_url}/chat/completions", json=body) as reply:
                    answer = await reply.json()
                text = answer["choices"][0]["message"]["content"]
                sink.write(json.dumps({"answer": text}) + "\n")
                done += 1

            await asyncio.gather(*(one(row) for row in rows))
    return done


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    run_started = time.perf_counter()
    requests = asyncio.run(run(args.base_url, args.source, args.out, args.concurrency))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "requests": requests,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "run_wall_s": time.perf_counter() - run_started,
                "wall_s": time.perf_counter() - started,
                "peak_rss_mb": usage.ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
