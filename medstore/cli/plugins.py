"""`plugins`: what is loaded, built-in and installed, and what each plugin registered."""

from __future__ import annotations

import click

from medstore.cli.options import CONTEXT, echo_json, json_option
from medstore.hookspecs import hookimpl


@click.command(context_settings=CONTEXT)
@click.option("--all", "show_all", is_flag=True, help="Include medstore's built-in plugins.")
@json_option
def plugins(show_all: bool, as_json: bool) -> None:
    """List the plugins loaded: their package, hooks, and the recipes and backends they add.

    Third-party plugins are modules named in the `medstore` entry-point group of an installed
    package (see the README, "Writing a recipe plugin").

    \b
    Example:
        python cli.py plugins
        python cli.py plugins --all --json
    """
    from medstore.plugins import PluginError, loaded_plugins

    try:
        found = [p for p in loaded_plugins() if show_all or not p["builtin"]]
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no third-party plugins installed (--all lists the built-in ones)")
    for plugin in found:
        origin = "built-in" if plugin["builtin"] else f"{plugin['package']} {plugin['version']}"
        click.echo(f"{plugin['name']}  ({origin})  hooks: {', '.join(plugin['hooks'])}")
        for kind in ("recipes", "backends"):
            if plugin[kind]:
                click.echo(f"    {kind}: {', '.join(plugin[kind])}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(plugins)
