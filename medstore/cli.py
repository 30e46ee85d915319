"""The command line: thin click commands over the library. Errors are one line and exit non-zero."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .llm import BACKENDS, BackendUnavailable, make_backend
from .recipes import RECIPES, SourceError, get_recipe
from .recipes.base import Recipe
from .store import Warehouse, WarehouseError, default_db_path

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def db_option(fn: Callable) -> Callable:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Warehouse file [default: warehouse.db, or $MEDSTORE_DB].",
    )(fn)


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


def open_warehouse(db_path: str | None, *, must_exist: bool = False) -> Warehouse:
    path = db_path or default_db_path()
    if must_exist and not Path(path).exists():
        raise click.ClickException(f"{path}: no such warehouse (run `python cli.py run` first)")
    try:
        return Warehouse(path)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="medstore")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def cli(verbose: bool) -> None:
    """medstore: medical training data from teacher LLMs, every step in an event log.

    \b
    Example:
        python cli.py run --recipe consult --limit 3
        python cli.py status
        python cli.py provenance SAMPLE_ID
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def recipe_options(fn: Callable) -> Callable:
    """Add every recipe's own options to `run`; each recipe reads the ones it declares."""
    seen: set[str] = set()
    for name in sorted(RECIPES, reverse=True):
        for option in getattr(get_recipe(name), "cli_options", ()):
            if option.name not in seen:
                seen.add(option.name)
                fn = click_param_decorator(option)(fn)
    return fn


def click_param_decorator(option: click.Option) -> Callable:
    def decorate(fn: Callable) -> Callable:
        fn.__click_params__ = [*getattr(fn, "__click_params__", []), option]  # type: ignore[attr-defined]
        return fn

    return decorate


@cli.command(context_settings=CONTEXT)
@click.option(
    "--recipe",
    "recipe_name",
    default="consult",
    show_default=True,
    help=f"What to generate: {', '.join(sorted(RECIPES))}.",
)
@click.option("--source", help="Input file or folder [default: the recipe's shipped data].")
@click.option("--limit", type=click.IntRange(min=0), help="Take only the first N source records.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    help="Teacher backend [default: openai if --base-url, $MEDSTORE_BASE_URL or $OPENAI_BASE_URL, "
    "else the embedded local model].",
)
@click.option("--base-url", help="OpenAI-compatible or Ollama server URL.")
@click.option("--model", help="Model name at the backend [$MEDSTORE_MODEL].")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="Environment variable holding the API key (never stored).",
)
@click.option(
    "--response-format",
    type=click.Choice(["json_schema", "json_object", "none"]),
    default="json_schema",
    show_default=True,
    help="How JSON stages ask an OpenAI-compatible server for structured output.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Tasks in flight at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=600.0,
    show_default=True,
    help="Seconds to wait for one LLM answer.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries on 429, 5xx, timeouts and dropped connections.",
)
@click.option(
    "--retry-base-delay",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="First backoff in seconds (doubles each retry; Retry-After wins).",
)
@click.option(
    "--repair-temperature",
    type=float,
    default=0.30,
    show_default=True,
    help="Temperature of repair attempts.",
)
@click.option("--seed", type=int, help="Sampling seed sent with every request.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Always call the teacher, even for requests the log has already answered.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--shard", "shard_text", help="Take only shard i of N (e.g. 0/4) by task-key hash.")
@click.option("--rpm", type=click.IntRange(min=1), help="Most requests per minute to send.")
@click.option("--tpm", type=click.IntRange(min=1), help="Most tokens per minute (prompt + max).")
@click.option(
    "--max-cost",
    "max_cost",
    type=click.FloatRange(min=0),
    help="Stop cleanly before spending more than this many USD.",
)
@click.option(
    "--prices",
    "prices_path",
    type=click.Path(exists=True, dir_okay=False),
    help='JSON price table: {"model": [input, output]} USD per million tokens.',
)
@click.option(
    "--dry-run", is_flag=True, help="Estimate calls, tokens and cost; send and write nothing."
)
@click.option(
    "--batch",
    "use_batch",
    is_flag=True,
    help="Send requests as OpenAI Batch API jobs (half price, hours); use a high --concurrency.",
)
@click.option(
    "--batch-poll",
    type=click.FloatRange(min=0.01),
    default=30.0,
    show_default=True,
    help="Seconds between polls of a batch job.",
)
@recipe_options
@db_option
def run(
    recipe_name: str,
    source: str | None,
    limit: int | None,
    backend: str | None,
    base_url: str | None,
    model: str | None,
    api_key_env: str,
    response_format: str,
    concurrency: int,
    timeout: float,
    retries: int,
    retry_base_delay: float,
    repair_temperature: float,
    seed: int | None,
    no_cache: bool,
    no_progress: bool,
    shard_text: str | None,
    rpm: int | None,
    tpm: int | None,
    max_cost: float | None,
    prices_path: str | None,
    dry_run: bool,
    use_batch: bool,
    batch_poll: float,
    db_path: str | None,
    **recipe_kwargs: Any,
) -> None:
    """Generate samples with a recipe; resumes where the log says it stopped.

    Finished tasks are skipped, tasks cut off by a crash are redone, and requests the log has
    already answered are replayed from it instead of paid for again.

    \b
    Example:
        python cli.py run --recipe consult --limit 3
        python cli.py run --recipe consult --base-url https://api.deepseek.com/v1 \\
            --model deepseek-chat --api-key-env DEEPSEEK_API_KEY --concurrency 16
        python cli.py run --backend ollama --model llama3.1 --limit 10
        python cli.py run --recipe consult --model gpt-4o-mini --dry-run
        python cli.py run --recipe consult --model gpt-4o-mini --rpm 500 --max-cost 20
        python cli.py run --recipe consult --shard 0/4 --db shard0.db --batch --concurrency 5000
    """
    from .budget import PriceUnknown
    from .llm.prices import use_price_file
    from .runner import RetryPolicy, Runner, RunOptions
    from .shard import Shard

    try:
        shard = Shard.parse(shard_text) if shard_text else None
        if prices_path:
            use_price_file(prices_path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        recipe_class = get_recipe(recipe_name)
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from exc
    recipe: Recipe = recipe_class(recipe_kwargs)
    try:
        teacher = make_backend(
            backend,
            base_url=base_url,
            model=model,
            timeout=timeout,
            api_key_env=api_key_env,
            response_format=response_format,
        )
    except BackendUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if use_batch:
        from .batch_api import BatchBackend
        from .llm.openai_backend import OpenAIBackend

        if not isinstance(teacher, OpenAIBackend):
            raise click.ClickException("--batch needs an OpenAI-compatible backend (--base-url)")
        # Requests that arrive together go in one job: wait for stragglers a moment, but never
        # longer than a few polls.
        teacher = BatchBackend(
            teacher, poll_interval_s=batch_poll, linger_s=min(1.0, 4 * batch_poll)
        )
    options = RunOptions(
        limit=limit,
        concurrency=concurrency,
        use_cache=not no_cache,
        retry=RetryPolicy(retries=retries, base_delay=retry_base_delay),
        repair_temperature=repair_temperature,
        seed=seed,
        progress=not no_progress,
        shard=shard,
        rpm=rpm,
        tpm=tpm,
        max_cost_usd=max_cost,
        config={
            "recipe": recipe_name,
            "source": source or recipe.default_source(),
            "limit": limit,
            "concurrency": concurrency,
            "timeout": timeout,
            "retries": retries,
            "seed": seed,
            "cache": not no_cache,
            "recipe_options": recipe_kwargs,
            "shard": shard_text,
            "rpm": rpm,
            "tpm": tpm,
            "max_cost_usd": max_cost,
            "batch": use_batch,
        },
    )
    if dry_run and not Path(db_path or default_db_path()).exists():
        db_path = ":memory:"  # nothing to learn from, and a dry run creates nothing
    warehouse = open_warehouse(db_path)
    try:
        runner = Runner(warehouse, recipe, teacher, options)
    except PriceUnknown as exc:
        warehouse.close()
        raise click.ClickException(str(exc)) from exc
    if dry_run:
        try:
            estimate = runner.estimate(source)
        except SourceError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            warehouse.close()
        click.echo(render_estimate(estimate.as_dict(), teacher.model))
        return
    try:
        result = asyncio.run(runner.run(source))
    except (SourceError, BackendUnavailable, WarehouseError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        warehouse.close()
    counts = result.counts
    click.echo(
        f"run {result.run_id} {result.status}: {counts['accepted']} accepted, "
        f"{counts['rejected']} rejected, {counts['failed']} failed, "
        f"{counts['skipped_done']} already done, {counts['cache_replays']} cache replays, "
        f"{counts['tokens']} tokens, ${runner.cost:.4f}"
    )
    click.echo(f"warehouse: {warehouse.path}  (see: python cli.py status; python cli.py serve)")
    if result.status == "budget_exhausted":
        click.echo(
            f"stopped before passing --max-cost ${max_cost:g}; unfinished tasks are redone by"
            " the next run (with a larger --max-cost)"
        )
    if result.status == "interrupted":
        sys.exit(130)


def render_estimate(estimate: dict[str, Any], model: str) -> str:
    cost = estimate["cost_usd"]
    basis = (
        f"averages of {estimate['basis_tasks']} finished tasks in this warehouse"
        if estimate["basis"] == "history"
        else "prompt templates and max_tokens (no finished tasks yet: an upper bound on output;"
        " run a few with --limit for a closer figure)"
    )
    return (
        f"dry run: {estimate['tasks_to_do']} of {estimate['tasks_in_source']} tasks to do, "
        f"~{estimate['calls']} calls, ~{estimate['input_tokens']} input + "
        f"~{estimate['output_tokens']} output tokens, "
        + (f"~${cost:.4f}" if cost is not None else f"cost unknown (no price for {model!r})")
        + f"\nbasis: {basis}"
    )


@cli.command(context_settings=CONTEXT)
@db_option
@json_option
def status(db_path: str | None, as_json: bool) -> None:
    """Tasks by state per recipe, failures by reason, skipped source rows, recent runs.

    \b
    Example:
        python cli.py status
        python cli.py status --json | jq '.recipes'
    """
    from .status import render_status, warehouse_status

    with open_warehouse(db_path, must_exist=True) as warehouse:
        report = warehouse_status(warehouse)
    echo_json(report) if as_json else click.echo(render_status(report))


@cli.command(context_settings=CONTEXT)
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
    from .provenance import UnknownSample, render_text, sample_provenance

    with open_warehouse(db_path, must_exist=True) as warehouse:
        try:
            events = sample_provenance(warehouse, sample_id)
        except UnknownSample as exc:
            raise click.ClickException(str(exc)) from exc
    echo_json(events) if as_json else click.echo(render_text(events))


@cli.command(context_settings=CONTEXT)
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
    echo_json(figures) if as_json else click.echo(render_tree(figures))


def render_tree(value: Any, indent: int = 0) -> str:
    """Nested dicts and lists as an indented listing."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.append(render_tree(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {item}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(f"{pad}- {item}" for item in value)
    return f"{pad}{value}"


@cli.command(context_settings=CONTEXT)
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


def register_command_modules() -> None:
    """Commands of larger areas (export, train, serve, mimic, ...) live in medstore/commands/;
    each module lists its click commands in ``COMMANDS``."""
    import importlib
    import pkgutil

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


register_command_modules()
