"""The plugin registry: built-in and installed recipes, backends and commands, by name.

medstore's own modules are registered first, then every module named in the ``medstore``
entry-point group (installed packages). Nothing is loaded until something asks for it, so
importing a medstore module never depends on import order.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import pluggy

from medstore import hookspecs

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "medstore"
# The built-in plugins, registered through the same hooks as third-party ones: the recipes and
# backends, then the commands.
RECIPE_PLUGINS = ("medstore.recipes.builtin", "medstore.llm.builtin")
DEFAULT_PLUGINS = (
    *RECIPE_PLUGINS,
    "medstore.cli.run",
    "medstore.cli.revalidate",
    "medstore.cli.inspection",
    "medstore.cli.samples",
    "medstore.cli.serve",
    "medstore.cli.export",
    "medstore.cli.train",
    "medstore.cli.lineage",
    "medstore.cli.eval",
    "medstore.cli.mimic",
    "medstore.cli.scale",
    "medstore.cli.plugins",
)


# Which installed package each entry-point plugin came from (for ``cli.py plugins``).
DISTRIBUTIONS: dict[str, Any] = {}


class PluginError(Exception):
    """A plugin registered something that cannot be used (a clash, a bad class): one line."""


@dataclass
class Registry:
    """What the plugins registered, and which plugin registered each."""

    recipes: dict[str, type[Recipe]] = field(default_factory=dict)
    backends: dict[str, Callable[..., Any]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # "recipe:consult" -> plugin name


@cache
def plugin_manager(*, commands: bool = True) -> pluggy.PluginManager:
    """Every plugin, registered once per process. ``commands=False``: without the built-in
    command modules, which only the CLI needs (a run through the library asks for recipes and
    backends; importing the twelve command modules costs ~0.1 s of CPU)."""
    manager = pluggy.PluginManager("medstore")
    manager.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS if commands else RECIPE_PLUGINS:
        manager.register(importlib.import_module(name), name=name)
    load_entry_points(manager)
    return manager


def load_entry_points(manager: pluggy.PluginManager) -> None:
    """Register every module of the ``medstore`` entry-point group; one that fails to import
    is a PluginError naming it (the whole CLI would otherwise die with its traceback)."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            module = entry_point.load()
        except Exception as exc:
            package = entry_point.dist.name if entry_point.dist else "?"
            raise PluginError(
                f"plugin {entry_point.name} (package {package}) failed to load: {exc!r}"
            ) from exc
        manager.register(module, name=entry_point.name)
        DISTRIBUTIONS[entry_point.name] = entry_point.dist


def plugin_name(manager: pluggy.PluginManager, hookimpl: Any) -> str:
    return manager.get_name(hookimpl.plugin) or repr(hookimpl.plugin)


@cache
def registry() -> Registry:
    """Call every plugin's register hooks once; a name registered twice is a PluginError."""
    manager = plugin_manager(commands=False)
    found = Registry()
    for impl in manager.hook.register_recipes.get_hookimpls():
        owner = plugin_name(manager, impl)

        def add_recipe(recipe_class: type, owner: str = owner) -> None:
            name = getattr(recipe_class, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {owner}: {recipe_class!r} has no recipe name")
            if name in found.recipes:
                raise PluginError(
                    f"plugin {owner}: recipe {name!r} is already registered by "
                    f"{found.owners['recipe:' + name]}"
                )
            found.recipes[name] = recipe_class
            found.owners["recipe:" + name] = owner

        impl.function(register=add_recipe)
    for impl in manager.hook.register_backends.get_hookimpls():
        owner = plugin_name(manager, impl)

        def add_backend(name: str, factory: Callable[..., Any], owner: str = owner) -> None:
            if name in found.backends:
                raise PluginError(
                    f"plugin {owner}: backend {name!r} is already registered by "
                    f"{found.owners['backend:' + name]}"
                )
            found.backends[name] = factory
            found.owners["backend:" + name] = owner

        impl.function(register=add_backend)
    return found


def recipe_names() -> list[str]:
    return sorted(registry().recipes)


def get_recipe(name: str) -> type[Recipe]:
    """The recipe class registered under ``name``; UnknownRecipe names the known ones."""
    try:
        return registry().recipes[name]
    except KeyError:
        raise UnknownRecipe(
            f"unknown recipe {name!r}: expected one of {', '.join(recipe_names())}"
        ) from None


class UnknownRecipe(KeyError):
    pass


def backend_names() -> list[str]:
    return sorted(registry().backends)


def loaded_plugins() -> list[dict[str, Any]]:
    """Every plugin with its hooks and what it registered, for ``cli.py plugins``."""
    manager = plugin_manager()
    reg = registry()
    plugins = []
    for plugin in manager.get_plugins():
        name = manager.get_name(plugin)
        hooks = sorted(impl_name for impl_name in dir(plugin) if hasattr(hookspecs, impl_name))
        dist = DISTRIBUTIONS.get(name)
        plugins.append(
            {
                "name": name,
                "builtin": name in DEFAULT_PLUGINS,
                "version": dist.version if dist is not None else None,
                "package": dist.name if dist is not None else None,
                "hooks": [hook for hook in hooks if hook.startswith("register_")],
                "recipes": sorted(n for n, o in owned(reg, "recipe") if o == name),
                "backends": sorted(n for n, o in owned(reg, "backend") if o == name),
            }
        )
    return sorted(plugins, key=lambda item: (not item["builtin"], item["name"]))


def owned(reg: Registry, kind: str) -> list[tuple[str, str]]:
    prefix = kind + ":"
    return [
        (key[len(prefix) :], owner) for key, owner in reg.owners.items() if key.startswith(prefix)
    ]
