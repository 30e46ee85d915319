"""What every command shares: the context settings, --db, --json, opening the warehouse."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from medstore.warehouse.store import Warehouse, WarehouseError, default_db_path

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def db_option(fn: Callable) -> Callable:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Warehouse file [default: warehouse.db, or $MEDSTORE_DB].",
    )(fn)


def recipe_option_pairs(fn: Callable) -> Callable:
    """``-o KEY VALUE``: a recipe option by name, llm-style (run and revalidate take it)."""
    return click.option(
        "-o",
        "--option",
        "pairs",
        type=(str, str),
        multiple=True,
        metavar="KEY VALUE",
        help="A recipe option as a key and a value, llm-style (e.g. -o min_preservation 0.7).",
    )(fn)


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


def open_warehouse(
    db_path: str | None, *, must_exist: bool = False, readonly: bool = False
) -> Warehouse:
    """The warehouse a command names; ``readonly`` for commands that only read (they write
    nothing, and refuse a file that is not a current medstore warehouse)."""
    path = db_path or default_db_path()
    if (must_exist or readonly) and not Path(path).exists():
        raise click.ClickException(f"{path}: no such warehouse (run `python cli.py run` first)")
    try:
        return Warehouse(path, readonly=readonly)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
