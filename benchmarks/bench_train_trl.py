"""Training benchmark: `cli.py train` against a plain TRL SFTTrainer script, same run.

Both train a LoRA adapter (r 16, alpha 32, q/k/v/o) on the bundled SmolLM2-135M-Instruct, on the
same rows (long consult-like conversations, written here in the export's shape: `messages` plus
`prompt`/`completion`), with the same batch size, --max-seq-len and number of steps, each in its
own process so that its peak resident memory (ru_maxrss) is its own. Reported: training seconds,
non-padding tokens, tokens/s, the ratio of medstore's tokens/s to plain TRL's (target >= 0.95),
and peak RSS (target for medstore at --max-seq-len 4096, batch 2, on a CPU: under 4 GB).

Run: python benchmarks/bench_train_trl.py [--steps 3] [--batch-size 2] [--max-seq-len 4096]
         [--repeats 1] [--gradient-checkpointing]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SYSTEM = "You are an experienced physician. Give the assessment and plan."
FINDINGS = (
    "The patient reports intermittent chest tightness on exertion, relieved by rest, with "
    "occasional palpitations and shortness of breath climbing stairs; no syncope; smoker of "
    "twenty pack-years; father had a myocardial infarction at fifty-five. "
)


def rows(count: int, max_seq_len: int) -> list[dict]:
    """Conversations from about a third of --max-seq-len up to nearly all of it."""
    made = []
    for index in range(count):
        share = 0.3 + 0.6 * (index % 4) / 3  # 30%, 50%, 70%, 90% of the limit
        repeats = max(1, int(max_seq_len * share / 45))  # FINDINGS is ~45 tokens
        prompt = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Case {index}. " + FINDINGS * repeats},
        ]
        answer = (
            f"Case {index}: stable angina is the leading diagnosis; acute coronary syndrome must "
            "be excluded first. Plan: ECG, troponin, lipid profile, aspirin, and an exercise "
            "test or CT coronary angiography. " * 3
        )
        completion = [{"role": "assistant", "content": answer}]
        made.append({"messages": prompt + completion, "prompt": prompt, "completion": completion})
    return made


def run_child(command: list[str]) -> tuple[dict, float]:
    """The child's last JSON object on stdout, and its peak resident memory in GiB."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        out.seek(0)
        text = out.read().decode()
        if status != 0:
            err.seek(0)
            raise SystemExit(f"{command[:3]} failed:\n{err.read().decode()[-3000:]}")
    return last_json(text), usage.ru_maxrss / 1024**2  # KiB -> GiB


def last_json(text: str) -> dict:
    """The last JSON object that starts a line (libraries print dicts of their own too)."""
    decoder, found = json.JSONDecoder(), None
    for index in [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]:
        if text.startswith("{", index):
            try:
                found = decoder.raw_decode(text, index)[0]
            except ValueError:
                continue
    if found is None:
        raise SystemExit(f"no JSON result in:\n{text[-2000:]}")
    return found


def medstore_command(data: Path, out: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "cli.py", "train", "--data", str(data), "--out", str(out),
               "--db", str(out.parent / f"{out.name}.db"), "--batch-size", str(args.batch_size),
               "--max-seq-len", str(args.max_seq_len), "--max-steps", str(args.steps),
               "--no-progress", "--json"]  # fmt: skip
    return command + (
        ["--gradient-checkpointing"]
        if args.gradient_checkpointing
        else ["--no-gradient-checkpointing"]
    )


def plain_command(data: Path, model: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "benchmarks/plain_trl_sft.py", "--data", str(data),
               "--model", str(model), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size),
               "--max-seq-len", str(args.max_seq_len)]  # fmt: skip
    return command + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; fastest kept")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    from medstore.llm.local import bundled_folder

    model, _ = bundled_folder()
    results: dict[str, list[tuple[dict, float]]] = {"plain": [], "medstore": []}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = rows(args.batch_size * args.steps, args.max_seq_len)
        (work / "export").mkdir()
        (work / "export" / "train.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in data), encoding="utf-8"
        )
        plain_rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in data]
        (work / "plain.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in plain_rows), encoding="utf-8"
        )
        for repeat in range(args.repeats):
            results["plain"].append(run_child(plain_command(work / "plain.jsonl", model, args)))
            out = work / f"medstore-{repeat}"
            results["medstore"].append(run_child(medstore_command(work / "export", out, args)))
    report(results, args)


def report(results: dict[str, list[tuple[dict, float]]], args: argparse.Namespace) -> None:
    def best(name: str) -> tuple[float, float, float]:
        runs = []
        for result, rss in results[name]:
            metrics = result.get("metrics", result)
            runs.append((metrics["runtime_s"], metrics["tokens_trained"], rss))
        seconds, tokens, _ = min(runs)
        return seconds, tokens, max(rss for *_, rss in runs)

    plain, ours = best("plain"), best("medstore")
    base_rate = plain[1] / plain[0]
    print(
        f"LoRA SFT, bundled SmolLM2-135M, CPU, batch {args.batch_size}, {args.steps} steps, "
        f"--max-seq-len {args.max_seq_len}, gradient checkpointing "
        f"{'on' if args.gradient_checkpointing else 'off'}, fastest of {args.repeats}"
    )
    print("| what | seconds | tokens | tokens/s | ratio (tokens/s) | peak RSS GiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (seconds, tokens, rss) in (("plain TRL SFTTrainer script", plain),
                                         ("cli.py train", ours)):  # fmt: skip
        rate = tokens / seconds
        print(f"| {name} | {seconds:.1f} | {tokens:,.0f} | {rate:,.1f} | "
              f"{rate / base_rate:.2f} | {rss:.2f} |")  # fmt: skip
    print(json.dumps({"argv": sys.argv[1:], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())}))  # fmt: skip


if __name__ == "__main__":
    main()
