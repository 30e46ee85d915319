"""The five recipes that ship with medstore, registered through the plugin hook."""

from __future__ import annotations

from collections.abc import Callable

from medstore.hookspecs import hookimpl


@hookimpl
def register_recipes(register: Callable[[type], None]) -> None:
    from medstore.recipes.consult import ConsultRecipe
    from medstore.recipes.hierarchical import HierarchicalRecipe
    from medstore.recipes.medec_cot import MedecCotRecipe
    from medstore.recipes.medec_safe import MedecSafeRecipe
    from medstore.recipes.mimic_dialogue import MimicDialogueRecipe

    for recipe in (
        ConsultRecipe,
        MedecCotRecipe,
        MedecSafeRecipe,
        HierarchicalRecipe,
        MimicDialogueRecipe,
    ):
        register(recipe)
