"""The ``cli`` group, which asks the plugins for its commands on first use."""

from __future__ import annotations

import logging

import click

from medstore import __version__
from medstore.cli.options import CONTEXT


class PluginGroup(click.Group):
    """A click group whose commands come from the ``register_commands`` hook, loaded lazily."""

    loaded = False

    def load_plugins(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        from medstore.plugins import PluginError, plugin_manager

        try:
            plugin_manager().hook.register_commands(cli=self)
        except PluginError as exc:
            raise click.ClickException(str(exc)) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load_plugins()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        """A plugin that registers something unusable is one line, wherever it surfaces."""
        from medstore.plugins import PluginError

        try:
            return super().invoke(ctx)
        except PluginError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=PluginGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="medstore")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def cli(verbose: bool) -> None:
    """medstore: medical training data from teacher LLMs, every step in an event log.

    \b
    Example:
        python cli.py run --recipe consult --limit 3
        python cli.py status
        python cli.py provenance SAMPLE_ID
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
