"""`revalidate`: judge finished tasks again from the outputs in the log (no LLM call), then
scan the dataset for near-duplicates and contamination."""

from __future__ import annotations

from typing import Any

import click

from medstore.cli.model_options import add_model_options, build_model, given
from medstore.cli.options import (
    CONTEXT,
    db_option,
    echo_json,
    open_warehouse,
    recipe_option_pairs,
)
from medstore.cli.run import RunCommand, recipe_values
from medstore.hookspecs import hookimpl
from medstore.pipeline.options import RunOptions
from medstore.quality.options import ScanOptions

SCAN_FIELDS = list(ScanOptions.model_fields)
# The judge's gate: its recorded scores against a new threshold (no judge is called).
JUDGE_FIELDS = ["judge_model", "min_judge_score"]


@click.command(cls=RunCommand, context_settings=CONTEXT)
@click.option(
    "--recipe", help="Whose tasks to judge again [default: every recipe in the warehouse]."
)
@recipe_option_pairs
@click.option(
    "--source",
    help="Where the tasks were read from [default: the source of the recipe's latest run].",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Judge every finished task, not only those judged under other validators or options.",
)
@add_model_options(RunOptions, exclude=set(RunOptions.model_fields) - set(JUDGE_FIELDS))
@add_model_options(ScanOptions)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def revalidate(**params: Any) -> None:
    """Re-run the current validators on the raw outputs already in the log: no LLM call.

    Each finished task whose verdict was given under other validators or options (a changed
    threshold, a new check) is judged again from its recorded outputs, and the new verdict is
    recorded under the current validator version: samples that no longer pass leave `samples`
    and exports (the reason is in `status` and the task's page), samples that now pass join.
    Then the dataset is scanned for near-duplicates and contamination (see `report`).

    The options given now are the ones applied (a recipe option not given takes its default).

    `--min-judge-score N` gates again on the judge's recorded scores (those of `--judge-model`,
    else of the recipe's latest judge): no judge is called; without it the judge gates nothing.

    \b
    Example:
        python cli.py revalidate --recipe hierarchical --min-preservation 0.7
        python cli.py revalidate --recipe consult --min-judge-score 4
        python cli.py revalidate --recipe consult --all --against heldout.jsonl
        python cli.py revalidate
    """
    from medstore.pipeline.revalidate import Revalidation, RevalidationError
    from medstore.plugins import get_recipe
    from medstore.quality.eval_sets import EvalSetError
    from medstore.quality.scan import scan_recipe

    ctx = click.get_current_context()
    scan_options = build_model(ScanOptions, given(ctx, SCAN_FIELDS))
    judging = build_model(RunOptions, given(ctx, JUDGE_FIELDS))
    recipe_flags = given(ctx, [option.name for option, _ in ctx.command.recipe_table().values()])
    if not params["recipe"] and (params["pairs"] or recipe_flags):
        raise click.UsageError("recipe options need --recipe (whose options they are)")
    reports = []
    with open_warehouse(params["db_path"], must_exist=True) as warehouse:
        names = [params["recipe"]] if params["recipe"] else warehouse_recipes(warehouse)
        for name in names:
            try:
                recipe_class = get_recipe(name)
            except KeyError as exc:
                raise click.ClickException(exc.args[0]) from exc
            values = recipe_values(ctx, name, params["pairs"]) if params["recipe"] else {}
            recipe = recipe_class(build_model(recipe_class.Options, values))
            try:
                revalidation = Revalidation(
                    warehouse,
                    recipe,
                    everything=params["everything"],
                    source=params["source"],
                    options=judging,
                )
            except RevalidationError as exc:
                raise click.ClickException(str(exc)) from exc
            result = revalidation.run()
            try:
                scan = scan_recipe(warehouse, recipe, scan_options)
            except EvalSetError as exc:
                raise click.ClickException(str(exc)) from exc
            reports.append((result, scan))
    if params["as_json"]:
        echo_json([as_dict(result, scan) for result, scan in reports])
        return
    for result, scan in reports:
        click.echo(render(result, scan))


def warehouse_recipes(warehouse: Any) -> list[str]:
    return [row["recipe"] for row in warehouse.select("revalidation_recipes")]


def as_dict(result: Any, scan: Any) -> dict[str, Any]:
    return {
        "recipe": result.recipe,
        "run_id": result.run_id,
        "validator_version": result.validator_version,
        "counts": dict(result.counts),
        "notes": result.notes,
        "changes": [
            {"task_key": key, "outcome": outcome, "reason": reason}
            for key, outcome, reason in result.changes
        ],
        "quality": {
            "samples": scan.samples,
            "clusters": scan.clusters,
            "duplicates": scan.duplicates,
            "contaminated": scan.contaminated,
            "notes": scan.notes,
        },
    }


def render(result: Any, scan: Any) -> str:
    return render_counts(result) + "\n" + scan.summary()


def render_counts(result: Any) -> str:
    """What a revalidation did, and the first tasks whose membership changed, with reasons."""
    counts = result.counts
    lines = [
        f"revalidate {result.recipe} under {result.validator_version}: {counts['judged']} "
        f"task(s) judged again from the log with 0 LLM calls: {counts['unchanged']} unchanged, "
        f"{counts['left']} left the dataset, {counts['joined']} joined, {counts['changed']} "
        f"changed, {counts['unresolved']} unresolved"
    ]
    for key, outcome, reason in result.changes:
        lines.append(f"  {outcome}: {key}" + (f": {reason}" if reason else ""))
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(revalidate)
