"""The version of a recipe's validator set: what every verdict event carries.

Two verdicts agree on what "passed" means only if the same checks judged them with the same
settings. The version hashes the recipe's name and version, the source of the code that judges
an output (the recipe's module, the modules its validators live in, the ``medstore.checks``
package, and the context's parse-and-validate step), each stage's output schema, and the
recipe's options (a threshold such as ``--min-preservation`` changes what passes), and where
the judge gates acceptance (``--min-judge-score``), the judge's gate: its model (whose scores
decide), the threshold and the code that applies it. Resume compares the version with the one
under which each finished task was judged, and ``revalidate`` records new verdicts under it.
"""

from __future__ import annotations

import inspect
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medstore.warehouse.hashing import canonical_json, short_hash

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe

CHECKS_PACKAGE = Path(__file__).resolve().parent.parent / "checks"
JUDGE_MODULE = Path(__file__).resolve().parent / "judge.py"


def validator_version(recipe: Recipe, judge: dict[str, Any] | None = None) -> str:
    """``vv-`` and a short hash of everything that decides whether an output passes.
    ``judge``: the judge's gate (``judge_gate``), None where the judge gates nothing."""
    parts: dict[str, Any] = {
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "code": validator_code_hash(type(recipe)),
        "schemas": {stage.name: stage.json_schema() for stage in recipe.stages},
        "options": recipe.options.model_dump(mode="json"),
    }
    if judge is not None:  # absent, not null: runs without a gating judge keep their version
        parts["judge"] = judge
    return "vv-" + short_hash(canonical_json(parts), 12)


def judge_gate(model: str | None, min_score: float | None) -> dict[str, Any] | None:
    """What of the judge decides which samples pass: the model whose scores count, the
    ``--min-judge-score`` threshold and the code that applies it. None without a judge or
    without a threshold (scores recorded only: the judge then rejects nothing)."""
    if model is None or min_score is None:
        return None
    return {"model": model, "min_score": min_score, "code": judge_code_hash()}


@cache
def judge_code_hash() -> str:
    return short_hash(JUDGE_MODULE.read_text(encoding="utf-8"), 16)


@cache
def validator_code_hash(recipe_class: type) -> str:
    """A hash of the source files whose code judges the recipe's outputs."""
    from medstore.pipeline.context import TaskContext

    files = {module_file(recipe_class.__module__)}
    for stage in recipe_class.stages:
        files.update(module_file(validator.__module__) for validator in stage.validators)
    files.update(sorted(CHECKS_PACKAGE.glob("*.py")))
    texts = [path.read_text(encoding="utf-8") for path in sorted(p for p in files if p)]
    texts.append(inspect.getsource(TaskContext.check))
    return short_hash("\n".join(texts), 16)


def module_file(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    return Path(path) if path else None
