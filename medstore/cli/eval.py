"""`eval`: score a trained student (and its base model) on a medstore task."""

from __future__ import annotations

import os
from typing import Any

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl

TASK_HELP = (
    "medec-detect: error-flag accuracy and error-sentence match on MEDEC notes; structure: share "
    "of answers meeting the hierarchical rules; json-validity: share of consult answers whose JSON "
    "parses and validates."
)


@click.command("eval", context_settings=CONTEXT)
@click.option(
    "--model",
    "model_spec",
    required=True,
    help="A `train` output folder (adapter or model), bundled, a hub id or a model folder.",
)
@click.option(
    "--task",
    required=True,
    type=click.Choice(["medec-detect", "structure", "json-validity"]),
    help=TASK_HELP,
)
@click.option(
    "--data",
    help="medec-detect: a MEDEC CSV [default: the test split in shared]; structure: a "
    "consultations file or an export [default: data/consultations_sample.jsonl]; "
    "json-validity: a consult export folder (required).",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--no-base", is_flag=True, help="Score only --model, not the base model it was trained from."
)
@db_option
@json_option
def eval_command(
    model_spec: str,
    task: str,
    data: str | None,
    limit: int,
    max_new_tokens: int,
    batch_size: int,
    no_base: bool,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Score a model on a task, next to its base model; each score is an `eval_result` event.

    Decoding is greedy. For a `train` output folder the base model comes from its
    training_manifest.json, so the table shows base and trained side by side.

    \b
    Example:
        python cli.py eval --model runs/medec-lora --task medec-detect --limit 100
        python cli.py eval --model runs/hier-lora --task structure
        python cli.py eval --model runs/consult-lora --task json-validity --data exports/consult
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from medstore.training.eval import EvalError, evaluate

    with open_warehouse(db_path) as warehouse:
        try:
            report = evaluate(
                warehouse,
                model_spec,
                task,
                data=data,
                limit=limit,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                with_base=not no_base,
            )
        except EvalError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(report_json(report))
        return
    click.echo(render_report(report))


def report_json(report: Any) -> dict[str, Any]:
    return {
        "eval_id": report.eval_id,
        "task": report.task,
        "data": report.data,
        "examples": report.examples,
        "scores": [
            {"role": s.role, "model": s.model, "metrics": s.metrics, "event_id": s.event_id}
            for s in report.scores
        ],
    }


def render_report(report: Any) -> str:
    """A heading and one row per model scored: role, model and each metric to 3 places."""
    metric_names = list(report.scores[0].metrics)
    header = ["role", "model", *metric_names]
    rows = [
        [score.role, score.model, *(f"{score.metrics[name]:.3f}" for name in metric_names)]
        for score in report.scores
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [f"eval {report.eval_id}: {report.task} on {report.examples} examples of {report.data}"]
    for line in [header, ["-" * width for width in widths], *rows]:
        lines.append(
            "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        )
    return "\n".join(lines)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(eval_command)
