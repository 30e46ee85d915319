"""The recipes, by name. Each is imported only when used, so one recipe's dependencies never
slow another's start."""

from __future__ import annotations

import importlib

from .base import Recipe, Skip, SourceError, Stage, StageRejected, Task

RECIPES: dict[str, str] = {
    "consult": "medstore.recipes.consult:ConsultRecipe",
    "medec-cot": "medstore.recipes.medec_cot:MedecCotRecipe",
    "medec-safe": "medstore.recipes.medec_safe:MedecSafeRecipe",
    "hierarchical": "medstore.recipes.hierarchical:HierarchicalRecipe",
    "mimic-dialogue": "medstore.recipes.mimic_dialogue:MimicDialogueRecipe",
}

__all__ = [
    "RECIPES",
    "Recipe",
    "Skip",
    "SourceError",
    "Stage",
    "StageRejected",
    "Task",
    "get_recipe",
]


class UnknownRecipe(KeyError):
    pass


def get_recipe(name: str) -> type[Recipe]:
    try:
        target = RECIPES[name]
    except KeyError:
        raise UnknownRecipe(
            f"unknown recipe {name!r}: expected one of {', '.join(sorted(RECIPES))}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
