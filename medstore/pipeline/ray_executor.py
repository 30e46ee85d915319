"""`run --executor ray`: one run split into shards, each run by a Ray actor into its own log.

The driver reads the source once and picks the work (tasks the warehouse has not finished),
splits it by task-key hash into ``--workers`` shards (``--shard i/N``, the primitive underneath),
and hands each shard to a ``ShardWorker`` actor, which runs medstore's own runner into the
shard's log ``<warehouse>.shards/shard-i-of-N.db``. As each shard finishes, its log is merged
into the warehouse (``merge``: union by event id, so merging again adds nothing).

A worker that dies (killed, its node lost) is replaced: another actor runs the same shard on
the same log, and resumes it like any run: finished tasks are skipped, answered requests are
replayed from the log. Only a request in flight at the moment of loss, whose answer never
reached the log, is sent again; its reservation was counted as spent. One ``SharedLimits``
actor holds the rate limiter and the budget for all workers.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medstore.llm.prices import price_table
from medstore.pipeline.ray_worker import ShardSpec, ShardWorker
from medstore.pipeline.runner import Runner, RunResult
from medstore.pipeline.shard import ExecutorError, Shard, shard_of
from medstore.pipeline.shared_limits import SharedLimits
from medstore.warehouse.hashing import uuid7
from medstore.warehouse.merge import merge_warehouses
from medstore.warehouse.store import Warehouse, default_db_path

if TYPE_CHECKING:
    from medstore.pipeline.launch import RunPlan

log = logging.getLogger(__name__)

MAX_LOSSES = 3  # a shard whose worker dies this many times stops the run
INSTALL_HINT = "--executor ray needs Ray: pip install 'medstore[ray]'"
FORWARDED_ENV = ("MEDSTORE_", "OPENAI_")  # teacher settings a worker reads from its environment


@dataclass
class RayRun:
    """What the CLI prints after a Ray run, beside the combined RunResult."""

    warehouse: Warehouse  # closed; its path is where the merged data is
    cost: float = 0.0
    shard_runs: list[dict[str, Any]] = field(default_factory=list)
    lost_workers: int = 0
    interrupted: bool = False
    totals: dict[str, Any] = field(default_factory=dict)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(INSTALL_HINT) from None
    return ray


def shard_log(db_path: Path, index: int, count: int) -> Path:
    return db_path.with_name(db_path.name + ".shards") / f"shard-{index}-of-{count}.db"


def execute_on_ray(
    plan: RunPlan, db_path: str | None, say: Callable[[str], None] | None = None
) -> tuple[RunResult, RayRun]:
    """Run the plan over Ray workers and merge their logs into the warehouse at ``db_path``."""
    ray = import_ray()
    options = plan.options
    if options.shard is not None:
        raise ExecutorError("--shard and --executor ray do not go together: Ray shards the run")
    path = Path(db_path or default_db_path())
    ray_run = uuid7()
    with Warehouse(path) as warehouse:
        planner = Runner(warehouse, plan.recipe, plan.teacher, options)  # checks --max-cost
        tasks, skips, todo = planner.plan(plan.source)
    outcome = RayRun(warehouse)
    specs = shard_specs(plan, path, todo, skips, ray_run)
    if not specs:  # nothing left to do: no Ray needed
        return combine(ray_run, [], len(tasks), len(skips)), outcome
    started = connect(ray, options.ray_address)
    try:
        limits = make_limits(ray, options)
        run_pool(ray, specs, limits, options.workers, path, outcome, say or log.info)
        outcome.totals = ray.get(limits.totals.remote())
    finally:
        if started:
            ray.shutdown()
    result = combine(ray_run, outcome.shard_runs, len(tasks) - len(todo), len(skips))
    if outcome.interrupted:
        result.status = "interrupted"
    outcome.cost = sum(run["cost"] for run in outcome.shard_runs)
    return result, outcome


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster (or start a local Ray); True when this call started it."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except Exception as exc:  # Ray raises bare Exceptions too (a raylet that did not start)
        raise ExecutorError(f"cannot reach Ray at {address or '$RAY_ADDRESS'}: {exc}") from exc
    return True


def make_limits(ray: Any, options: Any) -> Any:
    """The one actor holding the rate limiter and budget for every worker; its in-flight limit
    is every worker's --concurrency together."""
    actor = ray.remote(num_cpus=0)(SharedLimits)
    return actor.remote(
        rpm=options.rpm,
        tpm=options.tpm,
        max_concurrency=options.concurrency * options.workers,
        window_s=options.rate_window_s,
        max_cost=options.max_cost,
    )


def shard_specs(
    plan: RunPlan, path: Path, todo: list[Any], skips: list[Any], ray_run: str
) -> list[ShardSpec]:
    """One spec per shard with tasks to do; the source's skips are recorded once, by the first."""
    count = plan.options.workers
    parts: list[list[Any]] = [[] for _ in range(count)]
    for task in todo:
        parts[shard_of(task.key, count)].append(task)
    first = next((part for part in parts if part), None)
    if first is not None:
        first[:0] = skips
    specs = []
    for index, items in enumerate(parts):
        if not items:
            continue
        options = plan.options.model_copy(
            update={
                "shard": Shard(index, count),
                "progress": False,
                "config": {**plan.options.config, "shard": f"{index}/{count}", "ray_run": ray_run},
            }
        )
        log_path = shard_log(path, index, count)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        specs.append(
            ShardSpec(
                index=index,
                count=count,
                log=str(log_path),
                recipe=plan.recipe.name,
                recipe_options=plan.recipe.options,
                backend_options=plan.backend_options,
                options=options,
                items=items,
                prices=price_table(),
            )
        )
    return specs


def worker_env(backend_options: Any) -> dict[str, Any]:
    """The teacher's settings from this environment (its URL, model and key), for workers
    that run on other machines."""
    names = {backend_options.api_key_env} if backend_options is not None else set()
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV) or k in names}
    return {"env_vars": env} if env else {}


def run_pool(
    ray: Any,
    specs: list[ShardSpec],
    limits: Any,
    workers: int,
    path: Path,
    outcome: RayRun,
    say: Callable[[str], None],
) -> None:
    """At most ``workers`` actors at a time, one per shard attempt; a lost one's shard is
    queued again for a new actor, on the same log. Each finished log is merged at once."""
    actor_class = ray.remote(num_cpus=1, max_restarts=0)(ShardWorker)
    pending = deque(specs)
    running: dict[Any, tuple[Any, ShardSpec]] = {}
    losses: Counter = Counter()
    try:
        while pending or running:
            while pending and len(running) < workers:
                spec = pending.popleft()
                actor = actor_class.options(
                    name=f"medstore-{spec.options.config['ray_run']}-shard-{spec.index}"
                    f"-try-{spec.attempt}",
                    runtime_env=worker_env(spec.backend_options) or None,
                ).remote()
                running[actor.run_shard.remote(spec, limits)] = (actor, spec)
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, spec = running.pop(ref)
            try:
                shard_run = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                pending.append(lost(ray, actor, spec, limits, losses, exc, say))
                outcome.lost_workers += 1
                continue
            ray.kill(actor)  # done: its CPU goes to the next shard
            if "error" in shard_run:
                raise ExecutorError(f"shard {spec.label}: {shard_run['error']}")
            finish(spec, shard_run, path, outcome, say)
    except KeyboardInterrupt:  # Ctrl-C: keep what the workers did; the next run resumes
        stop_workers(ray, running, limits, path)
        outcome.interrupted = True
    except BaseException:
        stop_workers(ray, running, limits, path)
        raise


def stop_workers(
    ray: Any, running: dict[Any, tuple[Any, ShardSpec]], limits: Any, path: Path
) -> None:
    """Stop the workers still running and merge what their logs hold so far."""
    for actor, spec in running.values():
        ray.kill(actor)
        ray.get(limits.forget.remote(spec.holder))
        merge_warehouses([spec.log], str(path))


def lost(
    ray: Any,
    actor: Any,
    spec: ShardSpec,
    limits: Any,
    losses: Counter,
    exc: BaseException,
    say: Callable[[str], None],
) -> ShardSpec:
    """A dead worker: free what it held, and give its shard to a new actor (same log)."""
    ray.kill(actor)  # if it is only unreachable, it must not write the log beside its heir
    ray.get(limits.forget.remote(spec.holder))
    losses[spec.index] += 1
    if losses[spec.index] >= MAX_LOSSES:
        raise ExecutorError(
            f"shard {spec.label}: its worker died {MAX_LOSSES} times ({type(exc).__name__}); "
            f"its log {spec.log} is kept: run again to resume"
        )
    say(f"shard {spec.label}: worker lost ({type(exc).__name__}); resuming it from {spec.log}")
    return replace(spec, attempt=spec.attempt + 1)


def finish(
    spec: ShardSpec, shard_run: dict[str, Any], path: Path, outcome: RayRun, say: Any
) -> None:
    report = merge_warehouses([spec.log], str(path))
    outcome.shard_runs.append({**shard_run, "shard": spec.label, "log": spec.log})
    counts = shard_run["counts"]
    say(
        f"shard {spec.label} {shard_run['status']}: {counts.get('accepted', 0)} accepted, "
        f"{counts.get('rejected', 0)} rejected, {counts.get('failed', 0)} failed; "
        f"merged +{report.added_events} events"
    )


def combine(ray_run: str, shard_runs: list[dict[str, Any]], done: int, skipped: int) -> RunResult:
    """The shard runs as one result: summed counts and failures, the gravest status."""
    counts: Counter = Counter({"skipped_done": done})
    failures: Counter = Counter()
    messages: dict[str, str] = {}
    for shard_run in shard_runs:
        counts.update(shard_run["counts"])
        failures.update(shard_run["failures"])
        for reason, message in shard_run["failure_messages"].items():
            messages.setdefault(reason, message)
    counts["source_skipped"] = skipped
    for key in ("accepted", "rejected", "failed", "cache_replays", "tokens"):
        counts.setdefault(key, 0)
    statuses = {shard_run["status"] for shard_run in shard_runs}
    status = next(
        (s for s in ("interrupted", "budget_exhausted", "failed") if s in statuses), "completed"
    )
    return RunResult(ray_run, status, counts, failures, messages)
