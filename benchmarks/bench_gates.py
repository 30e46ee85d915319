"""Content gates: cost per consult sample, as a ratio to the recipe's existing validation.

A consult sample is four stage outputs (profile, dialogue, reasoning, expert). The baseline is
what every output already went through: JSON parsing, the pydantic schema and the stage's own
validators (the ICD code-list lookup among them). The gates run on the parsed outputs, half
good and half junk (the embedded model's shapes). Target: gates < 0.5 ms per sample.

Run: python benchmarks/bench_gates.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medstore.checks.gates import check_gates  # noqa: E402
from medstore.checks.icd10 import known_codes  # noqa: E402
from medstore.checks.icd_match import titles  # noqa: E402
from medstore.checks.parsing import extract_json, validate_model  # noqa: E402
from medstore.recipes import consult  # noqa: E402
from tests.teachers import DIALOGUE, EXPERT, REASONING, profile_reply  # noqa: E402
from tests.teachers_junk import JUNK_DIALOGUE, JUNK_EXPERT, LOOP, junk_profile  # noqa: E402

REQUEST = {"messages": [{"role": "user", "content": "age (40) ... sex (male)"}]}
VARIABLES = {"age": 40, "sex": "male"}
STAGES = {stage.name: stage for stage in consult.ConsultRecipe.stages}
SPECS = {
    "profile": consult.PROFILE_GATES,
    "dialogue": consult.DIALOGUE_GATES,
    "reasoning": consult.TEXT_GATES,
    "expert": consult.EXPERT_GATES,
}


def samples(n: int) -> list[dict[str, str]]:
    good = {
        "profile": profile_reply(REQUEST),
        "dialogue": json.dumps(DIALOGUE),
        "reasoning": REASONING,
        "expert": json.dumps(EXPERT),
    }
    junk = {
        "profile": junk_profile(REQUEST),
        "dialogue": json.dumps({"turns": JUNK_DIALOGUE["turns"] * 2}),
        "reasoning": LOOP,
        "expert": json.dumps(JUNK_EXPERT),
    }
    return [good if i % 2 else junk for i in range(n)]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    started = time.perf_counter()
    known_codes()
    titles()
    load = time.perf_counter() - started
    raw = samples(args.samples)
    existing_validation(raw[0])  # warm caches
    base_s, parsed = timed(existing_validation, raw)

    def gate(outputs: dict) -> list:
        return [check_gates(value, SPECS[name]) for name, value in outputs.items()]

    good_s, _ = timed(gate, parsed[1::2])
    junk_s, failures = timed(gate, parsed[0::2])
    rejected = sum(any(stage) for stage in failures)
    n, half = args.samples, args.samples // 2
    gates_s = good_s + junk_s
    print(f"{'measure (CPU time of this process)':<46}{'value':>14}  ratio")
    print(f"{'code list + ICD titles, once per process':<46}{load:>12.2f} s")
    print(f"{'existing validation per sample':<46}{base_s / n * 1000:>11.3f} ms  baseline")
    for label, seconds, count in (
        ("content gates per sample (all)", gates_s, n),
        ("content gates per good sample", good_s, half),
        ("content gates per junk sample", junk_s, half),
    ):
        ratio = (seconds / count) / (base_s / n)
        print(f"{label:<46}{seconds / count * 1000:>11.3f} ms  {ratio:.2f}x of baseline")
    print(f"{'junk samples rejected by the gates':<46}{rejected:>9}/{half}")


if __name__ == "__main__":
    main()
