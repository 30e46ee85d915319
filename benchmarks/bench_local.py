"""The embedded teacher on this machine: load time, batching throughput, JSON validity.

    python benchmarks/bench_local.py [--scenarios 3] [--tokens 48] [--json-max-tokens 0]

Three figures, each a ratio against a baseline measured in the same run:
  1. cold load (dequantise the GGUF into an empty cache) vs warm load (the cached copy), each in a
     fresh process;
  2. generated tokens/s with 8 requests in flight (one batch) vs the same 8 requests one by one;
  3. share of consult JSON stages (profile, dialogue, expert) whose output parses and validates
     against the stage's schema, constrained vs unconstrained, same prompts, seeds and budgets.
Figures depend on what else runs on the machine: the header prints the CPU count and load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medstore.checks.parsing import ParseError, extract_json, validate_model  # noqa: E402
from medstore.llm.base import GenerationParams  # noqa: E402
from medstore.llm.local import LocalBackend  # noqa: E402
from medstore.recipes.consult import ConsultRecipe  # noqa: E402
from medstore.sources.scenarios import load_scenarios  # noqa: E402

CONCURRENCY = 8
QUESTIONS = [
    "What is asthma?",
    "Name two causes of anaemia.",
    "How is type 2 diabetes treated?",
    "What does a raised troponin mean?",
    "Describe the signs of a stroke.",
    "When is a fever dangerous in a child?",
    "What is the first aid for a burn?",
    "Why do people get migraines?",
]
LOAD_SCRIPT = (
    "import time; t = time.perf_counter(); "
    "from medstore.llm.local import load_local_model; load_local_model('cpu'); "
    "print(time.perf_counter() - t)"
)


def timed_load(cache: Path) -> float:
    """Seconds from import to a loaded model, in a fresh process using ``cache``."""
    env = {**os.environ, "MEDSTORE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def load_times() -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="medstore-bench-cache-") as folder:
        cold = timed_load(Path(folder))
        warm = timed_load(Path(folder))
    return cold, warm


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


async def throughput(backend: LocalBackend, tokens: int) -> tuple[float, float]:
    """(single-stream tokens/s, concurrency-8 aggregate tokens/s) on the same requests.

    Sampled with fixed seeds, so both sides write the same tokens (the batch does not change a
    row's output) and each row writes all ``tokens`` unless the model stops first.
    """
    params = [
        GenerationParams(temperature=0.7, max_tokens=tokens, seed=seed)
        for seed in range(len(QUESTIONS))
    ]
    await backend.complete(ask("Warm up."), GenerationParams(temperature=0, max_tokens=4))
    started = time.perf_counter()
    alone = [await backend.complete(ask(q), p) for q, p in zip(QUESTIONS, params, strict=True)]
    single_seconds = time.perf_counter() - started
    started = time.perf_counter()
    together = await asyncio.gather(
        *(backend.complete(ask(q), p) for q, p in zip(QUESTIONS, params, strict=True))
    )
    batch_seconds = time.perf_counter() - started
    assert [c.text for c in alone] == [c.text for c in together]
    assert {c.extra["batch_size"] for c in together} == {CONCURRENCY}
    written = sum(c.output_tokens for c in alone)
    return written / single_seconds, written / batch_seconds


def stage_variables(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each JSON stage's variables, as consult renders them, from the scenario's own fields."""
    profile = {
        "name": "A. Patient",
        "age": scenario["age"],
        "sex": scenario["sex"],
        "chief_complaint": scenario["symptoms"][0],
        "symptoms": scenario["symptoms"],
        "past_medical_history": [],
        "medications": [],
        "allergies": [],
        "risk_factors": scenario["risk_factors"],
        "social_history": scenario["background"],
    }
    reasoning = (
        f"A {scenario['age']}-year-old {scenario['sex']} with {', '.join(scenario['symptoms'])}. "
        f"Risk factors: {', '.join(scenario['risk_factors']) or 'none'}. The differential "
        f"follows from the {scenario['specialty']} presentation; investigations confirm it."
    )
    return {
        "profile": {"scenario": scenario, "age": scenario["age"], "sex": scenario["sex"]},
        "dialogue": {"profile": profile},
        "expert": {"profile": profile, "reasoning": reasoning},
    }


def is_valid(stage: Any, text: str) -> bool:
    try:
        parsed = extract_json(text)
    except ParseError:
        return False
    _, errors = validate_model(stage.schema, parsed)
    return not errors


async def json_validity(
    backend: LocalBackend, scenario_count: int, max_tokens: int
) -> dict[bool, tuple[int, int, int]]:
    """{constrained: (valid, calls, output tokens)} over the consult JSON stages."""
    recipe = ConsultRecipe({})
    scenarios = load_scenarios(Path(recipe.default_source()))[:scenario_count]
    calls = []
    for index, scenario in enumerate(scenarios):
        variables = stage_variables(scenario.model_dump())
        for name in ("profile", "dialogue", "expert"):
            stage = recipe.stage(name)
            budget = min(stage.max_tokens, max_tokens) if max_tokens else stage.max_tokens
            params = GenerationParams(temperature=stage.temperature, max_tokens=budget, seed=index)
            calls.append((stage, stage.template.render(variables[name]), params))
    results = {}
    for constrained in (True, False):
        completions = await asyncio.gather(
            *(
                backend.complete(messages, params, stage.json_schema() if constrained else None)
                for stage, messages, params in calls
            )
        )
        valid = sum(
            is_valid(stage, c.text) for (stage, _, _), c in zip(calls, completions, strict=True)
        )
        results[constrained] = (valid, len(calls), sum(c.output_tokens for c in completions))
    return results


async def measure(args: argparse.Namespace) -> tuple[tuple[float, float], dict]:
    backend = LocalBackend(device="cpu", max_batch=CONCURRENCY)
    await backend.preflight()
    try:
        rates = await throughput(backend, args.tokens)
        validity = await json_validity(backend, args.scenarios, args.json_max_tokens)
    finally:
        await backend.aclose()
    return rates, validity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=3, help="shipped scenarios to use")
    parser.add_argument("--tokens", type=int, default=48, help="max tokens per throughput call")
    parser.add_argument(
        "--json-max-tokens", type=int, default=0, help="cap on JSON stage budgets (0: the recipe's)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cpus = len(os.sched_getaffinity(0))
    print(f"# {cpus} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared machine)")
    cold, warm = load_times()
    (single, batched), validity = asyncio.run(measure(args))
    rows = [
        ("load, cold (dequantise GGUF)", f"{cold:.1f} s", "baseline"),
        ("load, warm (cached copy)", f"{warm:.1f} s", f"{cold / warm:.1f}x faster"),
        ("tokens/s, single stream", f"{single:.1f}", "baseline"),
        (f"tokens/s, concurrency {CONCURRENCY}", f"{batched:.1f}", f"{batched / single:.2f}x"),
    ]
    unconstrained_valid, calls, unconstrained_tokens = validity[False]
    constrained_valid, _, constrained_tokens = validity[True]
    rows += [
        (
            "consult JSON valid, unconstrained",
            f"{unconstrained_valid}/{calls} ({unconstrained_tokens} tok)",
            "baseline",
        ),
        (
            "consult JSON valid, constrained",
            f"{constrained_valid}/{calls} ({constrained_tokens} tok)",
            f"{constrained_valid / calls:.0%} vs {unconstrained_valid / calls:.0%}",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'value':>22}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>22}  {ratio}")
    print(json.dumps({"load_s": [cold, warm], "tokens_per_s": [single, batched]}))


if __name__ == "__main__":
    main()
