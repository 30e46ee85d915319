"""Starting a run from its three kinds of options: the recipe's, the teacher's and the run's.

This is what ``cli.py run`` does between parsing flags and printing the result, kept in the
library so that a script gets exactly the same run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medstore.llm import Backend, BackendOptions, make_backend
from medstore.llm.prices import use_price_file
from medstore.pipeline.budget import Estimate
from medstore.pipeline.judge import make_judge
from medstore.pipeline.options import RunOptions
from medstore.pipeline.runner import Runner, RunResult
from medstore.warehouse.store import Warehouse, default_db_path

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe


@dataclass
class RunPlan:
    """A recipe, a teacher and the run's options, ready to go (or to estimate)."""

    recipe: Recipe
    teacher: Backend
    options: RunOptions
    source: str | None
    backend_options: BackendOptions | None = None  # what a worker on another machine rebuilds
    judge: Backend | None = None

    def run_config(self) -> dict[str, Any]:
        """What ``run_started`` records: every option that shapes the run."""
        return {
            "recipe": self.recipe.name,
            "source": self.source or self.recipe.default_source(),
            **self.options.model_dump(mode="json", exclude={"config", "progress"}),
            "recipe_options": self.recipe.options.model_dump(mode="json"),
        }


def plan_run(
    recipe: Recipe,
    backend_options: BackendOptions,
    options: RunOptions,
    *,
    source: str | None = None,
    prices_path: str | None = None,
) -> RunPlan:
    """Build the teacher and the run's configuration; raises BackendUnavailable, ValueError
    (a bad price file) or PriceUnknown (--max-cost without a price) with a one-line reason."""
    if prices_path:
        use_price_file(prices_path)
    teacher = make_backend(backend_options)
    plan = RunPlan(recipe, teacher, options, source, backend_options, make_judge(options))
    config = {
        **plan.run_config(),
        "timeout": backend_options.timeout,
        "batch": backend_options.batch,
        "structured_output": backend_options.structured_output,
    }
    plan.options = options.model_copy(update={"config": config})
    return plan


def estimate(plan: RunPlan, db_path: str | None) -> Estimate:
    """--dry-run: the calls, tokens and cost the run would take; sends and writes nothing. A
    warehouse that does not exist yet is not created."""
    path = db_path or default_db_path()
    with Warehouse(path if Path(path).exists() else ":memory:") as warehouse:
        # With the judge: its gate is part of the validator version that picks stale tasks.
        runner = Runner(warehouse, plan.recipe, plan.teacher, plan.options, plan.judge)
        return runner.estimate(plan.source)


def execute(
    plan: RunPlan, db_path: str | None, say: Callable[[str], None] | None = None
) -> tuple[RunResult, Any]:
    """Run the plan to the end (or to Ctrl-C, or to the budget) against the warehouse: here,
    or with ``--executor ray`` over Ray workers (``say`` hears of each shard's end). Returns
    the result and what ran it (the Runner, or the RayRun), with its ``cost`` and ``warehouse``.

    A warehouse this call created is removed again if the run stops before writing anything
    (a wrong URL or key fails the teacher's startup check): no empty file is left behind.
    """
    path = db_path or default_db_path()
    created = not Path(path).exists()
    try:
        if plan.options.executor == "ray":
            from medstore.pipeline.ray_executor import execute_on_ray

            return execute_on_ray(plan, path, say)
        with Warehouse(path) as warehouse:
            runner = Runner(warehouse, plan.recipe, plan.teacher, plan.options, plan.judge)
            result = asyncio.run(runner.run(plan.source))
    except BaseException:
        if created and Path(path).exists():
            remove_if_empty(path)
        raise
    return result, runner


def remove_if_empty(path: str) -> None:
    """Delete a warehouse (and its WAL files) that holds no event."""
    with Warehouse(path, readonly=True) as warehouse:
        events = warehouse.select_value("last_event_id")
    if not events:
        for name in (path, f"{path}-wal", f"{path}-shm"):
            Path(name).unlink(missing_ok=True)
