"""What a plugin can add to medstore: recipes, teacher backends and CLI commands.

The hooks are pluggy's, as in llm and datasette. medstore's own recipes, backends and commands
register through these same hooks; a third-party package registers a module through the
``medstore`` entry-point group::

    [project.entry-points.medstore]
    my_recipe = "my_package.plugin"

and implements any of the hooks below with ``@medstore.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("medstore")
hookimpl = pluggy.HookimplMarker("medstore")


@hookspec
def register_recipes(register: Callable[[type], None]) -> None:
    """Add recipes: call ``register(RecipeClass)`` once per Recipe subclass.

    The class's ``name`` is what ``run --recipe`` takes; its ``Options`` model declares the
    options ``run`` accepts for it.
    """


@hookspec
def register_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Add teacher backends: call ``register(name, factory)``.

    ``factory(options)`` gets the run's ``medstore.llm.BackendOptions`` and returns a
    ``medstore.llm.Backend``; ``run --backend NAME`` picks it.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``cli`` click group (``cli.add_command(command)``)."""
