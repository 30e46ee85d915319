"""`export`: a recipe's dataset as JSONL, a `datasets` Arrow folder or Parquet, with lineage."""

from __future__ import annotations

from typing import Any

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl
from medstore.plugins import get_recipe
from medstore.training.export_files import FORMATS
from medstore.training.export_pairs import KINDS


@click.command(context_settings=CONTEXT)
@click.option(
    "--recipe",
    "recipe_name",
    required=True,
    help="Whose samples to export (a recipe name; see `python cli.py plugins`).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="arrow",
    show_default=True,
    help="jsonl: one object per line; arrow: a `datasets` folder (load_from_disk); parquet; "
    "hf-hub-ready: Parquet in the Hub's layout with a card `load_dataset` and `push_to_hub` "
    "take.",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="sft",
    show_default=True,
    help="sft: the samples (messages, prompt/completion); preference: DPO pairs (prompt, "
    "chosen, rejected) from the log, where the recipe has them (medec-cot).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder to write (an earlier export there is replaced) [default: exports/RECIPE].",
)
@click.option(
    "--include-fallbacks",
    is_flag=True,
    help="Also export the recipe's fallback rows (e.g. originals kept when a rewrite failed).",
)
@click.option(
    "--splits",
    "splits_text",
    metavar="NAME=SHARE,...",
    help="Shares of the train, validation and test splits, e.g. train=0.8,validation=0.1,test=0.1 "
    "[default: train=0.9,validation=0.1].",
)
@click.option(
    "--split-ratio",
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Shorthand for --splits train=R,validation=1-R.",
)
@click.option(
    "--keep-duplicates",
    is_flag=True,
    help="Export every member of a near-duplicate cluster [default: the earliest one only].",
)
@click.option(
    "--keep-contaminated",
    is_flag=True,
    help="Export samples that overlap held-out evaluation data [default: left out].",
)
@db_option
@json_option
def export(
    recipe_name: str,
    fmt: str,
    kind: str,
    out_dir: str | None,
    include_fallbacks: bool,
    splits_text: str | None,
    split_ratio: float | None,
    keep_duplicates: bool,
    keep_contaminated: bool,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Export a recipe's dataset with chat columns, manifest.json and a dataset card.

    Reads the recipe's dataset view (accepted, deduplicated, balanced where the recipe demands
    it, reviewer-rejected samples left out). Splits are by group (a MEDEC note, a scenario, a
    consultation, a MIMIC subject): every sample of a group goes to the split its group key
    hashes to, and keeps it when samples are added. Rows are sorted and no file holds a
    timestamp: re-exporting unchanged data gives identical files. Column types are declared
    per recipe, so every export has the same schema. The export is recorded as an
    `export_written` event. Near-duplicates (all but the earliest of a cluster) and samples
    contaminated by held-out evaluation data are left out, by the latest quality scan (scanned
    again first if the dataset changed since).

    \b
    Example:
        python cli.py export --recipe consult --format arrow --out exports/consult
        python cli.py export --recipe medec-cot --splits train=0.8,validation=0.1,test=0.1
        python cli.py export --recipe hierarchical --format jsonl --include-fallbacks
        python cli.py export --recipe medec-cot --format hf-hub-ready --out exports/medec-hub
        python cli.py export --recipe medec-cot --kind preference --out exports/medec-dpo
        python cli.py export --recipe consult --keep-duplicates --keep-contaminated
        python cli.py train --data exports/consult --out runs/consult-lora
    """
    from medstore.training.export import ExportError, export_dataset

    try:
        recipe = get_recipe(recipe_name)()
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from exc
    splits = chosen_splits(splits_text, split_ratio)
    if include_fallbacks and not recipe.fallback_view:
        raise click.ClickException(f"recipe {recipe_name!r} has no fallback rows to include")
    with open_warehouse(db_path, must_exist=True) as warehouse:
        try:
            left_out = quality_left_out(warehouse, recipe, keep_duplicates, keep_contaminated)
            result = export_dataset(
                warehouse,
                recipe,
                fmt,
                out_dir or f"exports/{recipe_name}",
                include_fallbacks=include_fallbacks,
                splits=splits,
                kind=kind,
                left_out=left_out,
            )
        except ExportError as exc:
            raise click.ClickException(str(exc)) from exc
    summary = {
        "export_id": result.export_id,
        "out_dir": str(result.out_dir),
        "format": result.format,
        "kind": result.manifest["kind"],
        "counts": result.counts,
        "manifest_hash": result.manifest_hash,
        "event_id": result.event_id,
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(render_summary(result, recipe_name))


def quality_left_out(
    warehouse: Any, recipe: Any, keep_duplicates: bool, keep_contaminated: bool
) -> dict[str, str]:
    """The samples to leave out by the latest quality scan, scanning first if it is stale."""
    from medstore.quality.eval_sets import EvalSetError
    from medstore.quality.scan import ensure_fresh_scan
    from medstore.sources.base import SourceError

    if not (keep_duplicates and keep_contaminated):
        try:
            ensure_fresh_scan(warehouse, recipe)
        except (EvalSetError, SourceError) as exc:
            raise click.ClickException(f"quality scan: {exc}") from exc
    rows = warehouse.select(
        "quality_exclusions",
        recipe=recipe.name,
        keep_duplicates=keep_duplicates,
        keep_contaminated=keep_contaminated,
    )
    return {row["sample_id"]: row["kind"] for row in rows}


def chosen_splits(splits_text: str | None, split_ratio: float | None) -> dict[str, float]:
    """--splits, or --split-ratio's train/validation, or the default."""
    from medstore.training.export_rows import DEFAULT_SPLITS, ExportError, parse_splits

    if splits_text and split_ratio is not None:
        raise click.UsageError("give --splits or --split-ratio, not both")
    if split_ratio is not None:
        return {"train": split_ratio, "validation": 1 - split_ratio}
    try:
        return parse_splits(splits_text) if splits_text else DEFAULT_SPLITS
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc


def render_summary(result: Any, recipe_name: str) -> str:
    counts = result.counts
    per_split = ", ".join(f"{counts[name]} {name}" for name in result.manifest["files"])
    lines = [
        f"export {result.export_id}: {counts['total']} rows ({per_split}) as {result.format} "
        f"in {result.out_dir}"
    ]
    left_out = sum(result.manifest["counts"]["left_out_for_balance"].values())
    if left_out:
        lines.append(f"note: {left_out} rows left out to keep the labels balanced in every split")
    by_quality = result.manifest["counts"].get("left_out_by_quality_scan", {})
    if by_quality:
        kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in by_quality.items())
        lines.append(
            f"note: left out by the quality scan: {kinds} (--keep-duplicates, --keep-contaminated)"
        )
    if result.manifest["kind"] == "preference":
        pairs = result.manifest["counts"]["samples_with_pairs"]
        lines.append(f"preference pairs (prompt, chosen, rejected) of {pairs} samples")
    elif not result.manifest["counts"]["with_messages"]:
        lines.append(f"note: recipe {recipe_name} has no chat form, so no messages column")
    return "\n".join(lines)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(export)
