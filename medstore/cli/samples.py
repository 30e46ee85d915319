"""`samples`: the reviewable samples with their ids and a one-line summary, filtered."""

from __future__ import annotations

import csv
import io

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl
from medstore.tables import render_table
from medstore.warehouse.samples import REVIEW_STATES, QueueFilter, list_samples

COLUMNS = ("sample_id", "recipe", "label", "review_state", "gate", "summary")
WIDTHS = {"summary": 70, "gate": 32}


@click.command(context_settings=CONTEXT)
@click.option("--recipe", default="", help="Only this recipe's samples.")
@click.option("--label", default="", help="Only samples with this label.")
@click.option(
    "--state",
    type=click.Choice(REVIEW_STATES),
    default=None,
    help="Only samples in this review state [default: any].",
)
@click.option("--gate", default="", help="Only samples that first failed this check (a kind).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many (0: all).",
)
@db_option
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of text.")
def samples(
    recipe: str,
    label: str,
    state: str | None,
    gate: str,
    limit: int,
    db_path: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Samples with their ids and a one-line summary, oldest first: every sample a reviewer can
    judge (its task's current outcome, not a copy), in any review state.

    \b
    Example:
        python cli.py samples --recipe consult --limit 10
        python cli.py samples --state rejected --json
        python cli.py provenance $(python cli.py samples --csv --limit 1 | tail -1 | cut -d, -f1)
    """
    if as_json and as_csv:
        raise click.UsageError("say --json or --csv, not both")
    where = QueueFilter(recipe=recipe, label=label, state=state or "", gate=gate)
    with open_warehouse(db_path, must_exist=True) as warehouse:
        rows = list_samples(warehouse, where, limit or None)
    if as_json:
        echo_json(rows)
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, "task_key", "created_utc"])
        writer.writeheader()
        writer.writerows({key: row.get(key) for key in writer.fieldnames} for row in rows)
        click.echo(buffer.getvalue(), nl=False)
    elif not rows:
        click.echo("no samples match (python cli.py status shows what the warehouse holds)")
    else:
        headers = ("sample", "recipe", "label", "review", "gate", "summary")
        click.echo(render_table(rows, COLUMNS, headers=headers, widths=WIDTHS))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(samples)
