"""The README's CLI reference: every command's --help, rendered the same on every machine.

cog runs this from README.md (`cog -r README.md` rewrites it, `cog --check README.md` fails
when it is stale; CI runs the check).
"""

from __future__ import annotations

import click

from medstore.cli import cli

WIDTH = 100


def help_text(command: click.Command, path: list[str], parent: click.Context | None) -> str:
    settings = {**command.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(command, info_name=path[-1], parent=parent, **settings)
    return command.get_help(ctx)


def reference() -> str:
    """Markdown: a heading and a code block per command and subcommand, in order."""
    root = click.Context(cli, info_name="cli.py", terminal_width=WIDTH, max_content_width=WIDTH)
    blocks = []
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        blocks.append(block(["cli.py", name], help_text(command, ["cli.py", name], root)))
        if isinstance(command, click.Group):
            group_ctx = click.Context(command, info_name=name, parent=root)
            for sub in command.list_commands(group_ctx):
                subcommand = command.get_command(group_ctx, sub)
                path = ["cli.py", name, sub]
                blocks.append(block(path, help_text(subcommand, path, group_ctx)))
    return "\n".join(blocks)


def block(path: list[str], text: str) -> str:
    title = " ".join(path[1:])
    return f"### `{title}`\n\n```\n{text.replace('cli.py', 'python cli.py', 1)}\n```\n"


if __name__ == "__main__":
    print(reference())
