"""`eval`: score models side by side on a medstore task: an endpoint (an API teacher), a trained
student and its base model; or score a MEDIQA-CORR run file made elsewhere."""

from __future__ import annotations

import os
from typing import Any

import click

from medstore.cli.model_options import build_model, given, model_option
from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl
from medstore.llm import BackendOptions
from medstore.pipeline.options import RunOptions

TASK_HELP = (
    "medec-detect: MEDIQA-CORR scores (error flag and error sentence accuracy, ROUGE composites) "
    "on MEDEC notes; structure: share of answers meeting the hierarchical rules; json-validity: "
    "share of consult answers whose JSON parses and validates."
)
ENDPOINT_FIELDS = ("backend", "base_url", "api_key_env", "timeout")
RUN_FIELDS = (
    "concurrency",
    "retries",
    "retry_base_delay",
    "seed",
    "cache",
    "rpm",
    "tpm",
    "max_cost",
)


def endpoint_options(fn: Any) -> Any:
    """The endpoint's flags, declared once on BackendOptions and RunOptions."""
    # click reverses the options collected on a function: append the last one first.
    for name in reversed(RUN_FIELDS):
        fn = add_option(fn, model_option(name, RunOptions.model_fields[name]))
    for name in reversed(ENDPOINT_FIELDS):
        fn = add_option(fn, model_option(name, BackendOptions.model_fields[name]))
    return fn


def add_option(fn: Any, option: click.Option) -> Any:
    params = getattr(fn, "__click_params__", [])
    params.append(option)
    fn.__click_params__ = params
    return fn


@click.command("eval", context_settings=CONTEXT)
@click.option(
    "--model",
    "model_spec",
    help="A local model (a `train` output folder, bundled, a hub id or a model folder); with "
    "--backend or --base-url, the endpoint's model name.",
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
@click.option(
    "--run-file",
    type=click.Path(dir_okay=False),
    help="medec-detect: score this MEDIQA-CORR run file against --data; no model is run.",
)
@click.option("--student", help="A local model scored beside the endpoint (and its base model).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--no-base", is_flag=True, help="Score only the local model, not the base it was trained from."
)
@click.option(
    "--prompt",
    type=click.Choice(["auto", "critic", "safe", "paper"]),
    default="auto",
    show_default=True,
    help="medec-detect: how the note is put: medec-cot's critic prompt, medec-safe's, or the "
    "MEDEC paper's numbered sentences; auto: the one the student was trained on.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "validation"]),
    help="From an export, the held-out split to use [default: test if it has rows, else "
    "validation].",
)
@click.option(
    "--allow-overlap",
    is_flag=True,
    help="Score a trained model even on data it was trained on (otherwise an error).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder for the medec-detect run files [default: runs/eval/EVAL_ID].",
)
@click.option("--prices", type=click.Path(dir_okay=False), help="JSON price table (see `run`).")
@endpoint_options
@db_option
@json_option
@click.pass_context
def eval_command(ctx: click.Context, **params: Any) -> None:
    """Score models side by side on a task; each score is an `eval_result` event.

    Local models decode greedily; a `train` output folder is scored next to the base model its
    training_manifest.json names, on data it was not trained on. An endpoint (--backend,
    --base-url) is asked through the same backends, cache and log as `run`: resumable and
    costed. medec-detect writes each model's MEDIQA-CORR run file and scores it as the shared
    task's official script does; --run-file scores one made elsewhere.

    \b
    Example:
        python cli.py eval --model runs/medec-lora --task medec-detect --limit 100
        python cli.py eval --task medec-detect --base-url https://api.openai.com/v1 \\
            --model gpt-4o-mini --student runs/medec-lora --limit 597
        python cli.py eval --task medec-detect --run-file run.txt --data MEDEC-MS-TestSet.csv
        python cli.py eval --model runs/consult-lora --task json-validity --data exports/consult
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from medstore.training.eval import EvalError, evaluate, score_run_file

    as_json = params["as_json"]
    with open_warehouse(params["db_path"]) as warehouse:
        try:
            if params["run_file"]:
                check_run_file_mode(ctx, params)
                report = score_run_file(warehouse, params["run_file"], params["data"])
            else:
                report = evaluate(warehouse, eval_request(ctx, params))
        except (EvalError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    if params["run_file"]:
        echo_json(run_file_json(report)) if as_json else click.echo(render_run_file(report))
    elif as_json:
        echo_json(report_json(report))
    else:
        click.echo(render_report(report))


def check_run_file_mode(ctx: click.Context, params: dict[str, Any]) -> None:
    if params["task"] != "medec-detect":
        raise click.UsageError("--run-file scores medec-detect run files only", ctx)
    if params["model_spec"] or params["student"] or params["backend"] or params["base_url"]:
        raise click.UsageError(
            "--run-file scores a file: give no --model, --student or endpoint", ctx
        )


def eval_request(ctx: click.Context, params: dict[str, Any]) -> Any:
    """The EvalRequest the flags describe; an endpoint when --backend or --base-url is given."""
    from medstore.llm.prices import use_price_file
    from medstore.training.eval import EvalRequest

    endpoint = None
    model = params["model_spec"]
    if params["backend"] or params["base_url"]:
        values = {**given(ctx, ENDPOINT_FIELDS), "model": params["model_spec"]}
        endpoint = build_model(BackendOptions, values)
        model = params["student"]
    elif params["student"]:
        raise click.UsageError("--student goes with an endpoint (--backend or --base-url)", ctx)
    elif not model:
        raise click.UsageError("name a model: --model (or an endpoint, or --run-file)", ctx)
    if params["prices"]:
        use_price_file(params["prices"])
    run_options = build_model(RunOptions, given(ctx, RUN_FIELDS), progress=False)
    return EvalRequest(
        task=params["task"],
        model=model,
        endpoint=endpoint,
        data=params["data"],
        limit=params["limit"],
        max_new_tokens=params["max_new_tokens"],
        batch_size=params["batch_size"],
        with_base=not params["no_base"],
        prompt=params["prompt"],
        split=params["split"],
        allow_overlap=params["allow_overlap"],
        run_options=run_options,
        out_dir=params["out_dir"],
    )


def report_json(report: Any) -> dict[str, Any]:
    return {
        "eval_id": report.eval_id,
        "task": report.task,
        "data": report.data,
        "examples": report.examples,
        "held_out": report.held_out,
        "scores": [
            {
                "role": s.role,
                "model": s.model,
                "metrics": s.metrics,
                "counts": s.counts,
                "run_file": s.run_file,
                "details": s.details,
                "event_id": s.event_id,
            }
            for s in report.scores
        ],
    }


def run_file_json(report: Any) -> dict[str, Any]:
    """The MEDIQA-CORR figures at the top level, then the counts and what was odd."""
    [score] = report.scores
    return {
        **score.metrics,
        "counts": score.counts,
        "problems": report.problems,
        "run_file": score.run_file,
        "data": report.data,
        "eval_id": report.eval_id,
        "event_id": score.event_id,
    }


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, ["-" * width for width in widths], *rows]
    ]


def render_report(report: Any) -> str:
    """A heading, one row per model scored (role, model, each metric to 3 places), then where
    the run files are and what each endpoint run cost."""
    metric_names = list(report.scores[0].metrics)
    rows = [
        [score.role, score.model, *(f"{score.metrics[name]:.3f}" for name in metric_names)]
        for score in report.scores
    ]
    lines = [f"eval {report.eval_id}: {report.task} on {report.examples} examples of {report.data}"]
    lines += table(["role", "model", *metric_names], rows)
    for score in report.scores:
        if score.details.get("run_id"):
            cost = score.details["cost_usd"]
            lines.append(
                f"{score.role} {score.model}: run {score.details['run_id']}, "
                f"{score.details['tokens']} tokens, "
                f"{'cost unknown' if cost is None else f'${cost:.4f}'}; "
                f"{score.details['asked']} prompts answered now ("
                f"{score.details['cache_replays']} replayed from the log), "
                f"{score.details['reused']} by earlier runs"
            )
        if score.run_file:
            lines.append(f"{score.role} run file: {score.run_file}")
    return "\n".join(lines)


def render_run_file(report: Any) -> str:
    [score] = report.scores
    rows = [[name, f"{value:.4f}"] for name, value in score.metrics.items()]
    counts = ", ".join(f"{name} {value}" for name, value in score.counts.items())
    lines = [f"{score.run_file} against {report.data}", *table(["metric", "value"], rows)]
    return "\n".join([*lines, counts, *report.problems])


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(eval_command)
