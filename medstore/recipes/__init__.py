"""Recipes: what each generator declares (``base``) and the five built-in ones.

A recipe plugin subclasses ``Recipe`` and registers it with the ``register_recipes`` hook
(see ``medstore.hookspecs``); ``builtin`` registers the five that ship with medstore.
"""

from medstore.recipes.base import (
    CredentialedOptions,
    Recipe,
    RecipeOptions,
    Skip,
    SourceError,
    Stage,
    StageRejected,
    Task,
)

__all__ = [
    "CredentialedOptions",
    "Recipe",
    "RecipeOptions",
    "Skip",
    "SourceError",
    "Stage",
    "StageRejected",
    "Task",
]
