"""`run`: generate samples with a recipe. Its flags come from three option models: the run's
(``RunOptions``), the teacher's (``BackendOptions``) and each recipe's own ``Options``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from medstore.cli.model_options import (
    add_model_options,
    build_model,
    flag_name,
    given,
    model_option,
    model_options,
)
from medstore.cli.options import CONTEXT, db_option, recipe_option_pairs
from medstore.hookspecs import hookimpl
from medstore.llm import BackendOptions, BackendUnavailable
from medstore.pipeline.options import RunOptions
from medstore.sources.base import SourceError
from medstore.warehouse.store import WarehouseError, default_db_path

RECIPE_PREFIX = "recipe__"  # click's name for a recipe option, apart from the run's own
BACKEND_FIELDS = [name for name, field in BackendOptions.model_fields.items()]
RUN_FIELDS = [opt.name for opt in model_options(RunOptions)]


def recipe_option_table() -> dict[str, tuple[click.Option, list[str]]]:
    """Every recipe option by field name: one click option, and the recipes that take it.

    Two recipes may share an option name; if they spell its values differently, it is read
    as text and each recipe's model checks it.
    """
    from medstore.plugins import PluginError, get_recipe, recipe_names

    table: dict[str, tuple[click.Option, list[str]]] = {}
    reserved = {*BACKEND_FIELDS, *RUN_FIELDS, "recipe", "source", "dry_run", "prices", "db"}
    for recipe in recipe_names():
        for name, field in get_recipe(recipe).Options.model_fields.items():
            if name in reserved:
                raise PluginError(
                    f"recipe {recipe}: option {flag_name(name, field)} clashes with a `run` option"
                )
            option = model_option(name, field, param_name=RECIPE_PREFIX + name)
            if name not in table:
                table[name] = (option, [recipe])
                continue
            first, takers = table[name]
            if (first.is_flag, first.multiple) != (option.is_flag, option.multiple):
                raise PluginError(
                    f"recipes {takers[0]} and {recipe} both declare {option.opts[0]}, one as a "
                    "flag and one with a value"
                )
            if first.type != option.type:
                first.type = click.STRING
            takers.append(recipe)
    return table


class RunCommand(click.Command):
    """`run`, whose recipe options are added when first needed and shown per recipe."""

    _recipe_table: dict[str, tuple[click.Option, list[str]]] | None = None

    def recipe_table(self) -> dict[str, tuple[click.Option, list[str]]]:
        if self._recipe_table is None:
            from medstore.plugins import backend_names, recipe_names

            self._recipe_table = recipe_option_table()
            # The names are known only once the plugins are loaded. A wrong recipe is a
            # one-line error from run itself; a wrong backend, click's usage error.
            for param in self.params:
                if param.name == "recipe":
                    param.metavar = f"[{'|'.join(recipe_names())}]"
                elif param.name == "backend":
                    param.type = click.Choice(backend_names())
        return self._recipe_table

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        help_option = params.pop()  # click keeps --help last
        return [*params, *(option for option, _ in self.recipe_table().values()), help_option]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `run --recipe X --help` shows only X's options: note X before --help is handled.
        for index, arg in enumerate(args):
            if arg == "--recipe" and index + 1 < len(args):
                ctx.meta["medstore.recipe"] = args[index + 1]
            elif arg.startswith("--recipe="):
                ctx.meta["medstore.recipe"] = arg.split("=", 1)[1]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        table = self.recipe_table()
        recipe_params = {option.name for option, _ in table.values()}
        teacher = {*BACKEND_FIELDS}
        sections: dict[str, list[tuple[str, str]]] = {"Options": [], "Teacher": []}
        for param in self.get_params(ctx):
            if param.name in recipe_params:
                continue
            record = param.get_help_record(ctx)
            if record:
                sections["Teacher" if param.name in teacher else "Options"].append(record)
        chosen = ctx.meta.get("medstore.recipe")
        for option, takers in table.values():
            for recipe in takers:
                if chosen in (None, recipe):
                    record = option.get_help_record(ctx)
                    if record:
                        sections.setdefault(f"Options of recipe {recipe}", []).append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def recipe_values(
    ctx: click.Context, recipe: str, pairs: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """The recipe options given as flags or as ``-o key value``; one meant for another recipe,
    or for none, is a UsageError naming the recipes that take it."""
    from medstore.plugins import get_recipe

    table = ctx.command.recipe_table()  # type: ignore[attr-defined]
    flags = given(ctx, [option.name for option, _ in table.values()])
    values = {name.removeprefix(RECIPE_PREFIX): value for name, value in flags.items()}
    for key, value in pairs:
        values[key.replace("-", "_")] = value
    accepted = get_recipe(recipe).Options.model_fields
    for name in values:
        if name in accepted:
            continue
        flag = "--" + name.replace("_", "-")
        takers = table[name][1] if name in table else []
        if takers:
            raise click.ClickException(f"{flag} is an option of {', '.join(takers)}, not {recipe}")
        known = ", ".join("--" + n.replace("_", "-") for n in accepted) or "none"
        raise click.ClickException(f"{recipe} has no option {flag} (its options: {known})")
    return values


@click.command(cls=RunCommand, context_settings=CONTEXT)
@click.option("--recipe", default="consult", show_default=True, help="What to generate.")
@click.option("--source", help="Input file or folder [default: the recipe's shipped data].")
@add_model_options(BackendOptions)
@add_model_options(RunOptions)
@recipe_option_pairs
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False),
    help='JSON price table: {"model": [input, output]} USD per million tokens.',
)
@click.option(
    "--dry-run", is_flag=True, help="Estimate calls, tokens and cost; send and write nothing."
)
@db_option
def run(**params: Any) -> None:
    """Generate samples with a recipe; resumes where the log says it stopped.

    Finished tasks are skipped, tasks cut off by a crash are redone, and requests the log has
    already answered are replayed from it instead of paid for again. `run --recipe NAME --help`
    shows only that recipe's options.

    \b
    Example:
        python cli.py run --recipe consult --limit 3
        python cli.py run --recipe consult --base-url https://api.deepseek.com/v1 \\
            --model deepseek-chat --api-key-env DEEPSEEK_API_KEY --concurrency 16
        python cli.py run --backend ollama --model llama3.1 --limit 10
        python cli.py run --recipe hierarchical -o min_preservation 0.7
        python cli.py run --recipe consult --model gpt-4o-mini --dry-run
        python cli.py run --recipe consult --model gpt-4o-mini --rpm 500 --max-cost 20
        python cli.py run --recipe consult --model gpt-4o-mini \\
            --judge-base-url http://localhost:8000/v1 --judge-model Qwen2.5-72B --min-judge-score 4
        python cli.py run --recipe consult --shard 0/4 --db shard0.db --batch --concurrency 5000
        python cli.py run --recipe consult --executor ray --workers 8 --ray-address auto
    """
    from medstore.pipeline.budget import PriceUnknown
    from medstore.pipeline.launch import estimate, execute, plan_run
    from medstore.pipeline.shard import ExecutorError
    from medstore.plugins import get_recipe

    ctx = click.get_current_context()
    recipe_name = params["recipe"]
    try:
        recipe_class = get_recipe(recipe_name)
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from exc
    recipe_options = build_model(
        recipe_class.Options, recipe_values(ctx, recipe_name, params["pairs"])
    )
    backend_options = build_model(BackendOptions, given(ctx, BACKEND_FIELDS))
    run_options = build_model(RunOptions, given(ctx, RUN_FIELDS))
    try:
        plan = plan_run(
            recipe_class(recipe_options),
            backend_options,
            run_options,
            source=params["source"],
            prices_path=params["prices"],
        )
        if params["dry_run"]:
            click.echo(render_estimate(estimate(plan, params["db_path"]).as_dict(), plan))
            return
        if run_options.revalidate and Path(params["db_path"] or default_db_path()).exists():
            click.echo(revalidate_first(plan, params["db_path"]))
        say = lambda line: click.echo(line, err=True)  # noqa: E731
        result, runner = execute(plan, params["db_path"], say=say)
    except (
        SourceError,
        BackendUnavailable,
        WarehouseError,
        PriceUnknown,
        ValueError,
        ExecutorError,
    ) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render_result(result, runner, run_options))
    if result.status == "completed" and result.counts["accepted"] + result.counts["rejected"]:
        click.echo(scan_after_run(plan.recipe, runner.warehouse.path))
    if result.status == "interrupted":
        sys.exit(130)
    if result.status == "completed" and every_task_failed(result.counts):
        raise click.ClickException(f"every task failed: {failure_summary(result)}")


def every_task_failed(counts: Any) -> bool:
    return counts["failed"] > 0 and counts["accepted"] + counts["rejected"] == 0


def failure_summary(result: Any) -> str:
    """The failures in one line: the count per reason, and the top reason's first message."""
    ranked = result.failures.most_common()
    top = ranked[0][0] if ranked else "unknown"
    reasons = ", ".join(f"{n} {reason}" for reason, n in ranked)
    message = " ".join(result.failure_messages.get(top, "").split())[:300]
    hint = FAILURE_HINTS.get(top, "")
    return f"{result.counts['failed']} failed ({reasons}); {top}: {message}{hint}"


FAILURE_HINTS = {
    "structured_output_refused": " (--structured-output auto finds a dialect the server accepts)"
}


def render_result(result: Any, runner: Any, options: RunOptions) -> str:
    """The run's last lines: counts, where the data is, and why it stopped early."""
    counts = result.counts
    lines = [
        f"run {result.run_id} {result.status}: {counts['accepted']} accepted, "
        f"{counts['rejected']} rejected, {counts['failed']} failed, "
        f"{counts['skipped_done']} already done, {counts['cache_replays']} cache replays, "
        f"{counts['tokens']} tokens, ${runner.cost:.4f}",
        f"warehouse: {runner.warehouse.path}  (see: python cli.py status; python cli.py serve)",
    ]
    if getattr(runner, "shard_runs", None) is not None:
        lines.append(
            f"ray: {len(runner.shard_runs)} shard runs merged; workers lost (their shards"
            f" resumed): {runner.lost_workers}; shard logs in {runner.warehouse.path}.shards/"
        )
    lines += gate_lines(result, runner)
    if result.status == "budget_exhausted":
        lines.append(
            f"stopped before passing --max-cost ${options.max_cost:g}; unfinished tasks are"
            " redone by the next run (with a larger --max-cost)"
        )
    elif counts["failed"] and not every_task_failed(counts):
        lines.append(f"{failure_summary(result)}; the next run redoes failed tasks")
    if counts["stale_done"]:
        lines.append(
            f"{counts['stale_done']} of the already done were judged under other validators or "
            f"options than now ({runner.validator_version}): --revalidate to apply them "
            "(no calls), --redo to regenerate"
        )
    return "\n".join(lines)


def revalidate_first(plan: Any, db_path: str | None) -> str:
    """`run --revalidate`: the finished tasks judged under other validators, judged again
    (under the run's options: its judge's recorded scores against its --min-judge-score)."""
    from medstore.cli.revalidate import render_counts
    from medstore.pipeline.revalidate import Revalidation
    from medstore.warehouse.store import Warehouse

    judge_model = plan.judge.model if plan.judge is not None else None
    with Warehouse(db_path or default_db_path()) as warehouse:
        revalidation = Revalidation(
            warehouse, plan.recipe, options=plan.options, judge_model=judge_model
        )
        return render_counts(revalidation.run())


def scan_after_run(recipe: Any, db_path: str) -> str:
    """The end of a run: a fresh near-duplicate and contamination scan of the recipe's data."""
    from medstore.quality.eval_sets import EvalSetError
    from medstore.quality.scan import ensure_fresh_scan
    from medstore.warehouse.store import Warehouse

    try:
        with Warehouse(db_path) as warehouse:
            scan = ensure_fresh_scan(warehouse, recipe)
    except (EvalSetError, SourceError, WarehouseError) as exc:
        return f"quality scan skipped: {exc}"
    except Exception as exc:  # the run is done and recorded: a scan bug must not fail it
        logging.getLogger(__name__).exception("quality scan failed")
        return f"quality scan failed ({exc!r}); `python cli.py revalidate` scans again"
    return scan.summary() if scan is not None else "quality scan: the dataset is unchanged"


def gate_lines(result: Any, runner: Any, top: int = 3) -> list[str]:
    """How many of the run's tasks passed the content gates, and the top reasons the others
    did not (a newcomer's explanation of a low count)."""
    counts = result.counts
    finished = counts["accepted"] + counts["rejected"]
    if not finished:
        return []
    from medstore.warehouse.store import Warehouse

    with Warehouse(runner.warehouse.path, readonly=True) as warehouse:  # the run's is closed
        failures = warehouse.select("run_gate_failures", run_id=result.run_id, n=top)
        rejected = warehouse.select_value("run_rejected_by_gates", run_id=result.run_id)
    line = f"content gates: {counts['accepted']} of {finished} tasks passed every check"
    if rejected:
        line += f"; {rejected} rejected by the gates"
    lines = [line]
    if failures:
        reasons = "; ".join(
            f"{row['stage']} {row['gate']} ({row['tasks']} task{'s' if row['tasks'] != 1 else ''})"
            for row in failures
        )
        lines.append(f"top gate failures: {reasons}; e.g. {failures[0]['example'][:160]}")
        lines.append(
            f"details: python cli.py report --recipe {runner.recipe.name} (gates, worst examples)"
        )
    return lines


def render_estimate(estimate: dict[str, Any], plan: Any) -> str:
    cost = estimate["cost_usd"]
    basis = (
        f"averages of {estimate['basis_tasks']} finished tasks in this warehouse"
        if estimate["basis"] == "history"
        else "prompt templates and max_tokens (no finished tasks yet: an upper bound on output;"
        " run a few with --limit for a closer figure)"
    )
    model = plan.teacher.model
    return (
        f"dry run: {estimate['tasks_to_do']} of {estimate['tasks_in_source']} tasks to do, "
        f"~{estimate['calls']} calls, ~{estimate['input_tokens']} input + "
        f"~{estimate['output_tokens']} output tokens, "
        + (f"~${cost:.4f}" if cost is not None else f"cost unknown (no price for {model!r})")
        + f"\nbasis: {basis}"
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(run)
