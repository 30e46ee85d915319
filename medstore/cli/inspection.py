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

    with open_warehouse(db_path, readonly=True) as warehouse:
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

    with open_warehouse(db_path, readonly=True) as warehouse:
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
    with open_warehouse(db_path, readonly=True) as warehouse:
        figures = recipe.report(warehouse)
    echo_json(figures) if as_json else click.echo(render_figures(figures))


@click.command(context_settings=CONTEXT)
@click.option(
    "--repair", is_flag=True, help="Rebuild the derived tables from the log, then verify."
)
@click.option("--anchor", is_flag=True, help="Print only the chain head's hash, to keep elsewhere.")
@click.option(
    "--expect-head",
    metavar="HASH",
    help="A head printed earlier by --anchor: fail unless it is still in the chain.",
)
@db_option
@json_option
def verify(
    repair: bool, anchor: bool, expect_head: str | None, db_path: str | None, as_json: bool
) -> None:
    """Recompute the hash chain, blob hashes and derived tables; exit 1 on any problem.

    Each problem is one line saying what was found: contents edited, events removed, events
    added outside the writer (forged), the chain rewritten, a derived row that the log does not
    back, or an anchored head that is no longer in the chain. With $MEDSTORE_CHAIN_KEY set, the
    head's HMAC signature is checked too.

    \b
    Example:
        python cli.py verify --db warehouse.db
        python cli.py verify --anchor > head.txt      # keep it somewhere else
        python cli.py verify --expect-head "$(cat head.txt)"
        python cli.py verify --repair                  # after a derived table was damaged
    """
    from medstore.warehouse.derived import rebuild_all

    path = db_path or default_db_path()
    if not Path(path).exists():
        raise click.ClickException(f"{path}: no such warehouse")
    try:
        if repair:
            with Warehouse(path) as writable:
                rebuild_all(writable.conn)
        with Warehouse(path, readonly=True) as warehouse:
            report = warehouse.verify(expect_head=expect_head)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc
    if anchor:
        click.echo(report.head["last_hash"])
    elif as_json:
        echo_json({"ok": report.ok, **report.__dict__})
    elif report.ok:
        click.echo(f"ok: {report.events} events and {report.blobs} blobs verified")
        for note in report.notes:
            click.echo(f"  {note}")
    else:
        for problem in report.problems:
            click.echo(problem, err=True)
        click.echo(f"FAILED: {len(report.problems)} problem(s) in {path}", err=True)
    if not report.ok:
        sys.exit(1)


@click.command(context_settings=CONTEXT)
@db_option
def migrate(db_path: str | None) -> None:
    """Bring a warehouse written by an older medstore up to date (schema and views).

    `run`, `export`, `train` and `review` migrate by themselves; the commands that only read
    (`status`, `report`, `provenance`, `verify`, `serve`) never write, and ask for this first.

    \b
    Example:
        python cli.py migrate --db old-run.db
    """
    from medstore.warehouse.migrations import pending_migrations
    from medstore.warehouse.store import check_is_warehouse, connect

    path = db_path or default_db_path()
    if not Path(path).exists():
        raise click.ClickException(f"{path}: no such warehouse")
    conn = connect(path, readonly=True)
    try:
        check_is_warehouse(conn, path, migrations_may_be_pending=True)
        pending = pending_migrations(conn)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        conn.close()
    with open_warehouse(path):  # opening read-write applies the migrations and views
        pass
    click.echo(f"{path}: applied {', '.join(pending)}" if pending else f"{path}: up to date")


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (status, provenance, report, verify, migrate):
        cli.add_command(command)
