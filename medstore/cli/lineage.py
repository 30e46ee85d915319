"""`lineage`: from a trained adapter back to its training run, export and samples."""

from __future__ import annotations

from pathlib import Path

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl


@click.command(context_settings=CONTEXT)
@click.argument("adapter_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--sample",
    "sample_id",
    metavar="ID",
    help="Also show this sample's provenance (it must be one of the export's samples).",
)
@db_option
@json_option
def lineage(adapter_dir: Path, sample_id: str | None, db_path: str | None, as_json: bool) -> None:
    """The chain adapter → training run → export → samples, each link checked by its hash.

    Reads ADAPTER_DIR's training_manifest.json, then the warehouse: the run's training events
    and evals, the export it was trained on (recipe, format, rows per split) and that export's
    samples by recipe and label, with how many are still in the dataset. With --sample, the
    sample's whole provenance (prompts, raw outputs, repairs, verdicts) follows.

    \b
    Example:
        python cli.py lineage runs/consult-lora
        python cli.py lineage runs/consult-lora --sample s-1a2b3c4d5e6f7a8b
        python cli.py lineage runs/consult-lora --json | jq '.export.samples'
    """
    from medstore.training.lineage import LineageError, adapter_lineage, render_lineage
    from medstore.warehouse.provenance import render_text

    with open_warehouse(db_path, readonly=True) as warehouse:
        try:
            chain = adapter_lineage(warehouse, adapter_dir, sample_id)
        except LineageError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(chain)
        return
    click.echo(render_lineage(chain))
    if sample_id is not None:
        click.echo(f"\nsample {sample_id}:")
        click.echo(render_text(chain["sample"]["events"]))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(lineage)
