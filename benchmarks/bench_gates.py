"""Content gates: cost per consult sample, as a ratio to the recipe's existing validation.

A consult sample is four stage outputs (profile, dialogue, reasoning, expert). The baseline is
what every output already went through: JSON parsing, the pydantic schema and the stage's own
validators (the ICD code-list lookup among them). The gates run on the parsed outputs, half
good and half junk (the embedded model's shapes). Target: gates < 0.5 ms per sample.

The samples are varied (``benchmarks/consult_samples.py``): every good sample has its own
patient, dialogue, reasoning and 2-5 differentials drawn from the labelled ICD pairs, so the
gates' caches (short strings' answers, each code's title words) hit only where a real teacher's
outputs repeat (short list items, common diagnoses), never on copies of one sample.

Run: python benchmarks/bench_gates.py [--samples 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.consult_samples import samples  # noqa: E402
from medstore.checks.gates import check_gates  # noqa: E402
from medstore.checks.icd10 import known_codes  # noqa: E402
from medstore.checks.icd_match import titles  # noqa: E402
from medstore.checks.parsing import extract_json, validate_model  # noqa: E402
from medstore.recipes import consult  # noqa: E402

VARIABLES = {"age": 40, "sex": "male"}
STAGES = {stage.name: stage for stage in consult.ConsultRecipe.stages}
SPECS = {
    "profile": consult.PROFILE_GATES,
    "dialogue": consult.DIALOGUE_GATES,
    "reasoning": consult.TEXT_GATES,
    "expert": consult.EXPERT_GATES,
}


def existing_validation(raw: dict[str, str]) -> dict[str, object]:
    """Parse, schema-validate and run the stage's own validators (not the gates)."""
    parsed = {}
    for name, text in raw.items():
        stage = STAGES[name]
        value = validate_model(stage.schema, extract_json(text))[0] if stage.schema else text
        for validator in stage.validators:
            if validator.__name__ != "content_gates":
                validator(value, VARIABLES)
        parsed[name] = value
    return parsed


def timed(fn, items) -> tuple[float, list]:
    """CPU seconds of this process (the machine is shared: wall time counts the others)."""
    started = time.process_time()
    out = [fn(item) for item in items]
    return time.process_time() - started, out


def gate(outputs: dict) -> list:
    return [check_gates(value, SPECS[name]) for name, value in outputs.items()]


def one_round(n: int, seed: int) -> dict[str, object]:
    """Validation, then the gates, on ``n`` fresh samples (half good, half junk)."""
    parsed_raw = samples(n, seed)
    base_s, parsed = timed(existing_validation, parsed_raw)
    good_s, good_out = timed(gate, parsed[1::2])
    junk_s, junk_out = timed(gate, parsed[0::2])
    return {
        "base": base_s,
        "good": good_s,
        "junk": junk_s,
        "good_out": good_out,
        "junk_out": junk_out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="fresh samples each; best kept")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    started = time.perf_counter()
    known_codes()
    titles()
    load = time.perf_counter() - started
    existing_validation(samples(2, seed=0)[1])  # warm the imports
    rounds = [one_round(args.samples, seed=19 + r) for r in range(args.rounds)]
    base_s, good_s, junk_s = (min(r[key] for r in rounds) for key in ("base", "good", "junk"))
    n, half = args.samples, args.samples // 2
    print(f"{'measure (CPU time of this process, best round)':<46}{'value':>14}  ratio")
    print(f"{'code list + ICD titles, once per process':<46}{load:>12.2f} s")
    print(f"{'existing validation per sample':<46}{base_s / n * 1000:>11.3f} ms  baseline")
    for label, seconds, count in (
        ("content gates per sample (all)", (good_s + junk_s), n),
        ("content gates per good sample", good_s, half),
        ("content gates per junk sample", junk_s, half),
    ):
        ratio = (seconds / count) / (base_s / n)
        print(f"{label:<46}{seconds / count * 1000:>11.3f} ms  {ratio:.2f}x of baseline")
    rejected = sum(any(out) for r in rounds for out in r["junk_out"])
    passed = sum(not any(out) for r in rounds for out in r["good_out"])
    total = half * args.rounds
    print(f"{'junk samples rejected by the gates':<46}{rejected:>9}/{total}")
    print(f"{'good samples passing every gate':<46}{passed:>9}/{total}")
    good_failures = [stage for r in rounds for out in r["good_out"] for stage in out if stage]
    for failure in good_failures[:5]:
        print(f"  good sample failed: {failure}")


if __name__ == "__main__":
    main()
