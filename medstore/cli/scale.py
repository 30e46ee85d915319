"""Commands for running at scale: merge the warehouses of sharded workers."""

from __future__ import annotations

import click

from medstore.cli.options import CONTEXT, echo_json, json_option
from medstore.hookspecs import hookimpl


@click.command(context_settings=CONTEXT)
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--into",
    "into",
    required=True,
    type=click.Path(dir_okay=False),
    help="Warehouse to merge into (created if missing).",
)
@json_option
def merge(sources: tuple[str, ...], into: str, as_json: bool) -> None:
    """Union the event logs of several warehouses (e.g. one per shard) into one.

    Each source's hash chain is verified first; events are matched by their globally unique
    id, so merging again adds nothing and the order of the sources does not matter. The
    dataset views of the result equal those of a single run over all shards.

    \b
    Example:
        python cli.py run --recipe consult --shard 0/2 --db shard0.db
        python cli.py run --recipe consult --shard 1/2 --db shard1.db
        python cli.py merge shard0.db shard1.db --into warehouse.db
    """
    from medstore.warehouse.merge import MergeError, merge_warehouses
    from medstore.warehouse.store import WarehouseError

    try:
        report = merge_warehouses(list(sources), into)
    except (MergeError, WarehouseError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(report.__dict__)
        return
    for source in report.sources:
        click.echo(
            f"{source['path']}: {source['events']} events verified, {source['added_events']} new"
        )
    click.echo(
        f"{into}: +{report.added_events} events, +{report.added_blobs} blobs"
        " (verify with: python cli.py verify --db " + into + ")"
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(merge)
