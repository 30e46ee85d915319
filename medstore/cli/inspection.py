"""Commands that read a warehouse: `status`, `provenance`, `report` and `verify`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl
from medstore.plugins import get_recipe
from medstore.tables import render_figures
from medstore.warehouse.store import Warehouse, WarehouseError, default_db_path


@click.command(context_settings=CONTEXT)
@db_option
@json_option
def status(db_path: str | None, as_json: bool) -> None:
    """Tasks by state per recipe, failures by reason, skipped source rows, recent runs.

    \b
    Example:
        python cli.py status
        python cli.py status --json | jq '.recipes'
    """
    from medstore.warehouse.status import render_status, warehouse_status

    with open_warehouse(db_path, must_exist=True) as warehouse:
        report = warehouse_status(warehouse)
    echo_json(report) if as_json else click.echo(render_status(report))


@click.command(context_settings=CONTEXT)
@click.argument("sample_id")
@db_option
@json_option
def provenance(sample_id: str, db_path: str | None, as_json: bool) -> None:
    """Everything behind one sample: source record, prompts, raw outputs, repairs, verdicts.

    \b
    Example:
        python cli.py provenance s-1a2b3c4d5e6f7a8b
        python cli.py provenance s-1a2b3c4d5e6f7a8b --json
    """
    from medstore.warehouse.provenance import UnknownSample, render_text, sample_provenance

    with open_warehouse(db_path, must_exist=True) as warehouse:
        try:
            events = sample_provenance(warehouse, sample_id)
        except UnknownSample as exc:
            raise click.ClickException(str(exc)) from exc
    echo_json(events) if as_json else click.echo(render_text(events))


@click.command(context_settings=CONTEXT)
@click.option("--recipe", "recipe_name", required=True, help="Recipe to report on.")
@db_option
@json_option
def report(recipe_name: str, db_path: str | None, as_json: bool) -> None:
    """Quality figures for one recipe's data: states, labels, rejection reasons, and its own.

    \b
    Example:
        python cli.py report --recipe medec-safe
        python cli.py report --recipe hierarchical --json
    """
    try:
        recipe = get_recipe(recipe_name)()
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from exc
    with open_warehouse(db_path, must_exist=True) as warehouse:
        figures = recipe.report(warehouse)
    echo_json(figures) if as_json else click.echo(render_figures(figures))


@click.command(context_settings=CONTEXT)
@db_option
@json_option
def verify(db_path: str | None, as_json: bool) -> None:
    """Recompute the hash chain and blob hashes; exit 1 if anything was edited or removed.

    \b
    Example:
        python cli.py verify --db warehouse.db
    """
    path = db_path or default_db_path()
    if not Path(path).exists():
        raise click.ClickException(f"{path}: no such warehouse")
    try:
        warehouse = Warehouse(path, readonly=True)
        report = warehouse.verify()
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "events": report.events,
                "blobs": report.blobs,
                "problems": report.problems,
            }
        )
    elif report.ok:
        click.echo(f"ok: {report.events} events and {report.blobs} blobs verified")
    else:
        for problem in report.problems:
            click.echo(problem, err=True)
        click.echo(f"FAILED: {len(report.problems)} problem(s) in {path}", err=True)
    if not report.ok:
        sys.exit(1)


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (status, provenance, report, verify):
        cli.add_command(command)
