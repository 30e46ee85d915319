"""The version of a recipe's validator set: what every verdict event carries.

Two verdicts agree on what "passed" means only if the same checks judged them with the same
settings. The version hashes the recipe's name and version, the source of the code that judges
an output (the recipe's module, the modules its validators live in, the ``medstore.checks``
package, and the context's parse-and-validate step), each stage's output schema, and the
recipe's options (a threshold such as ``--min-preservation`` changes what passes). Resume
compares it with the version under which each finished task was judged, and ``revalidate``
records new verdicts under it.
"""

from __future__ import annotations

import inspect
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from medstore.warehouse.hashing import canonical_json, short_hash

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe

CHECKS_PACKAGE = Path(__file__).resolve().parent.parent / "checks"


def validator_version(recipe: Recipe) -> str:
    """``vv-`` and a short hash of everything that decides whether an output passes."""
    return "vv-" + short_hash(
        canonical_json(
            {
                "recipe": recipe.name,
                "recipe_version": recipe.version,
                "code": validator_code_hash(type(recipe)),
                "schemas": {stage.name: stage.json_schema() for stage in recipe.stages},
                "options": recipe.options.model_dump(mode="json"),
            }
        ),
        12,
    )


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
