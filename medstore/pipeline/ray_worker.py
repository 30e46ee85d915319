"""A worker of a Ray run: one actor runs one shard with medstore's own runner, into its own log.

The actor is handed the shard's tasks (the driver read the source), the run's options with
``shard`` set, and the shared limits; it runs exactly what ``run --shard i/N --db LOG`` runs.
Run again on the same log (after a worker was lost), the runner resumes as any run does:
finished tasks are skipped and answered requests are replayed from the log, not paid again.
Nothing here imports Ray: the executor makes this class an actor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from medstore.llm import BackendOptions, make_backend
from medstore.llm.prices import use_prices
from medstore.pipeline.budget import Budget
from medstore.pipeline.judge import make_judge
from medstore.pipeline.options import RunOptions
from medstore.pipeline.runner import Runner
from medstore.pipeline.shared_limits import RemoteBudget, RemoteLimiter
from medstore.sources.base import Skip, Task
from medstore.warehouse.events import Envelope, TaskClaimed
from medstore.warehouse.hashing import utc_now
from medstore.warehouse.store import Warehouse

log = logging.getLogger(__name__)


@dataclass
class ShardSpec:
    """What one shard's worker needs; sent to the actor as is."""

    index: int
    count: int
    log: str  # the shard's own warehouse
    recipe: str
    recipe_options: Any  # the recipe's Options model
    backend_options: BackendOptions
    options: RunOptions  # with ``shard`` set
    items: list[Task | Skip] = field(default_factory=list)
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    attempt: int = 0

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def holder(self) -> str:
        """Who holds slots and reservations in the shared limits: this attempt at this shard."""
        return f"shard-{self.index}-of-{self.count}-try-{self.attempt}"


class ShardWorker:
    """The actor: ``run_shard`` returns the shard run's outcome, or ``{"error": one line}``."""

    def run_shard(self, spec: ShardSpec, limits: Any) -> dict[str, Any]:
        try:
            return run_one_shard(spec, limits)
        except Exception as exc:  # the driver reports it in one line and stops the run
            log.exception("shard %s failed", spec.label)
            return {"error": str(exc) or type(exc).__name__}


def run_one_shard(spec: ShardSpec, limits: Any) -> dict[str, Any]:
    from medstore.plugins import get_recipe

    use_prices(spec.prices)
    recipe = get_recipe(spec.recipe)(spec.recipe_options)
    backend = make_backend(spec.backend_options)
    options = spec.options
    budget = None
    if options.max_cost is not None:
        price_factor = getattr(backend, "price_factor", 1.0)
        pricing = Budget(options.max_cost, backend.model, price_factor)
        budget = RemoteBudget(limits, spec.holder, pricing)
    with Warehouse(spec.log) as warehouse:
        if spec.attempt:
            release_lost_claims(warehouse)
        runner = Runner(
            warehouse,
            recipe,
            backend,
            options,
            make_judge(options),
            limiter=RemoteLimiter(limits, spec.holder),
            budget=budget,
        )
        runner.source_items = spec.items
        result = asyncio.run(runner.run(None))
    return {
        "run_id": result.run_id,
        "status": result.status,
        "counts": dict(result.counts),
        "failures": dict(result.failures),
        "failure_messages": result.failure_messages,
        "cost": runner.cost,
    }


def release_lost_claims(warehouse: Warehouse) -> int:
    """Free the claims a dead worker left in its shard log, so that its heir, maybe on another
    node (where the dead process cannot be looked up), need not wait out their lease. Each
    release is the dead run's claim renewed to expire now, written before the heir starts."""
    claims = warehouse.select("claims_of_unfinished_runs", now=utc_now())
    if not claims:
        return 0
    host, pid = socket.gethostname(), os.getpid()
    warehouse.append(
        (
            TaskClaimed(owner=c["owner"], expires_utc=utc_now(), host=host, pid=pid),
            Envelope(c["owner"], c["recipe"], c["task_key"]),
        )
        for c in claims
    )
    return len(claims)
