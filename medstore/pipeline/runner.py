"""The async scheduler: tasks, concurrency, resume, progress, the run's events.

Every step a task takes becomes an event. Resume needs no state of its own: tasks whose latest
state in the log is accepted or rejected are skipped; anything else (in flight at a crash,
failed) is redone, and its finished LLM calls are replayed from the log rather than paid again.
What one task does (stage calls, cache, retries) is ``medstore.pipeline.context``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medstore.llm import Backend
from medstore.pipeline.budget import Budget, BudgetExhausted, Estimate, Reservation, estimate_run
from medstore.pipeline.context import TaskContext, TaskFailedError
from medstore.pipeline.data_use import DataUseRefused
from medstore.pipeline.options import RunOptions
from medstore.pipeline.progress import RunProgress
from medstore.pipeline.ratelimit import RateLimiter
from medstore.pipeline.stage import StageRejected
from medstore.resources import code_version
from medstore.sources.base import Skip, Task
from medstore.warehouse.events import (
    Envelope,
    Event,
    RunFinished,
    RunStarted,
    SampleAccepted,
    SampleRejected,
    SourceSkipped,
    TaskFailed,
    TaskStarted,
    make_record,
)
from medstore.warehouse.hashing import canonical_json, json_hash, short_hash, uuid7
from medstore.warehouse.store import BatchWriter, Warehouse, WarehouseError

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe

log = logging.getLogger(__name__)

REPAIR_TEMPLATE = "common/repair"


@dataclass
class RunResult:
    run_id: str
    status: str
    counts: Counter


class Runner:
    """Runs one recipe over its source against one backend, writing everything to the warehouse."""

    def __init__(
        self,
        warehouse: Warehouse,
        recipe: Recipe,
        backend: Backend,
        options: RunOptions | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.recipe = recipe
        self.backend = backend
        self.options = options or RunOptions()
        self.run_id = uuid7()
        self.counts: Counter = Counter()
        self.answered: set[str] = set()
        self.cost = 0.0
        self.writer: BatchWriter
        self._stopping = False
        self._budget_exhausted = False
        self.price_factor = getattr(backend, "price_factor", 1.0)
        self.limiter = RateLimiter(
            rpm=self.options.rpm,
            tpm=self.options.tpm,
            max_concurrency=self.options.concurrency,
            window_s=self.options.rate_window_s,
        )
        self.budget = (
            Budget(self.options.max_cost, backend.model, self.price_factor)
            if self.options.max_cost is not None
            else None
        )
        self._progress: RunProgress | None = None

    def reserve(self, messages: list[dict[str, str]], max_tokens: int) -> Reservation | None:
        """Hold the worst-case cost of a call against --max-cost (raises BudgetExhausted)."""
        return self.budget.reserve(messages, max_tokens) if self.budget is not None else None

    def settle(self, reservation: Reservation | None, cost: float | None) -> None:
        if self.budget is not None and reservation is not None:
            self.budget.settle(reservation, cost)

    def plan(self, source: str | None) -> tuple[list[Task], list[Skip], list[Task]]:
        """Read the whole source (errors surface before anything is written) and pick the work."""
        tasks: list[Task] = []
        skips: list[Skip] = []
        for item in self.recipe.read_source(source):
            (skips if isinstance(item, Skip) else tasks).append(item)
        if self.options.limit is not None:
            tasks = tasks[: self.options.limit]
        if self.options.shard is not None:  # after --limit: shards of one run partition its tasks
            tasks = [task for task in tasks if self.options.shard.owns(task.key)]
        finished = self.warehouse.finished_tasks(self.recipe.name)
        todo = [task for task in tasks if task.key not in finished]
        if self.options.cache and todo:
            # Checked in memory on every call; the log is only read when there is an answer.
            self.answered = self.warehouse.answered_request_hashes()
        return tasks, skips, todo

    def estimate(self, source: str | None) -> Estimate:
        """--dry-run: the calls, tokens and cost the run would take; sends and writes nothing."""
        tasks, _, todo = self.plan(source)
        return estimate_run(
            self.warehouse, self.recipe, self.backend.model, len(tasks), todo, self.price_factor
        )

    async def run(self, source: str | None) -> RunResult:
        tasks, skips, todo = self.plan(source)
        self.check_data_use()
        if todo:  # a finished run needs no server
            await self.backend.preflight()
        self.writer = self.warehouse.writer()
        self.record_start(tasks, skips, todo)
        status = "completed"
        try:
            await self._run_all(todo)
            if self._budget_exhausted:
                status = "budget_exhausted"
            elif self._stopping:
                status = "interrupted"
        except WarehouseError:
            status = "failed"
            raise
        finally:
            await self.record_finish(status)
        return RunResult(self.run_id, status, self.counts)

    def submit(self, *events: Event) -> Future:
        """Run-level events (no task), through the one writer."""
        envelope = Envelope(self.run_id, self.recipe.name)
        return self.writer.submit([make_record(event, envelope) for event in events])

    def record_start(self, tasks: list[Task], skips: list[Skip], todo: list[Task]) -> None:
        """run_started (with everything that shapes the run) and the skipped source records."""
        bind_log = getattr(self.backend, "bind_log", None)
        if bind_log is not None:  # a backend that records its own events (Batch API jobs)
            bind_log(self.warehouse, self.submit)
        self.submit(
            RunStarted(
                command="run",
                config={
                    **self.options.config,
                    "backend": self.backend.identity(),
                    "tasks_in_source": len(tasks),
                    "tasks_to_do": len(todo),
                },
                code_version=code_version(),
                prompt_hashes=self.recipe.prompt_hashes(),
            )
        )
        if skips:
            self.submit(
                *(
                    SourceSkipped(source_id=s.source_id, reason=s.reason, detail=s.detail)
                    for s in skips
                )
            )
        self.counts["skipped_done"] = len(tasks) - len(todo)
        self.counts["source_skipped"] = len(skips)

    async def record_finish(self, status: str) -> None:
        """run_finished, then drain the writer and close the backend, whatever happened."""
        if self._progress is not None:
            self._progress.close()
        counts = {k: int(v) for k, v in self.counts.items()}
        finished = self.submit(RunFinished(status=status, counts=counts))
        self.writer.close()
        if finished.exception() is None and status != "failed":
            log.info("run %s %s", self.run_id, status)
        await self.backend.aclose()

    def check_data_use(self) -> None:
        """A credentialed source goes only where the data-use guard allows: decided before any
        call (preflight included) and logged either way."""
        decision = self.recipe.data_use_decision(self.backend)
        if decision is None:
            return
        self.warehouse.append([(decision, Envelope(self.run_id, self.recipe.name))])
        if not decision.allowed:
            raise DataUseRefused(decision.message)

    async def _run_all(self, todo: list[Task]) -> None:
        self._progress = RunProgress(
            self.recipe.name,
            len(todo),
            len(self.recipe.stages),
            enabled=self.options.progress,
            counts=self.counts,
            cost=lambda: self.cost,
        )
        self.writer = self._progress.watch(self.writer)  # the bar moves on each stage call
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task in todo:
            queue.put_nowait(task)

        async def worker() -> None:
            while not self._stopping:
                try:
                    task = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._run_task(task)

        workers = [
            asyncio.create_task(worker()) for _ in range(min(self.options.concurrency, len(todo)))
        ]
        loop = asyncio.get_running_loop()
        stop_signals = (signal.SIGINT, signal.SIGTERM)

        def stop() -> None:
            self._stopping = True
            for running in workers:
                running.cancel()

        for signum in stop_signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                loop.add_signal_handler(signum, stop)
        try:
            results = await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for signum in stop_signals:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    async def _run_task(self, task: Task) -> None:
        ctx = TaskContext(self, task)
        ctx.emit(TaskStarted(source_id=task.source_id, source_record=canonical_json(task.record)))
        try:
            sample = await self.recipe.run(task, ctx)
        except StageRejected as rejected:
            fallback = canonical_json(rejected.fallback) if rejected.fallback is not None else None
            ctx.emit(
                SampleRejected(
                    reason=rejected.reason, errors=rejected.errors, fallback_sample=fallback
                )
            )
            outcome = "rejected"
        except TaskFailedError as failed:
            ctx.emit(TaskFailed(reason=failed.reason, message=str(failed)))
            outcome = "failed"
        except BudgetExhausted as exhausted:
            # Not finished, so a later run redoes it; no new task starts after this one.
            ctx.emit(TaskFailed(reason="budget_exhausted", message=str(exhausted)))
            outcome = "failed"
            self._budget_exhausted = self._stopping = True
        except (asyncio.CancelledError, WarehouseError):
            raise
        except Exception as exc:  # a recipe bug must not take the other tasks down
            log.exception("task %s failed", task.key)
            ctx.emit(TaskFailed(reason="internal_error", message=repr(exc)[:500]))
            outcome = "failed"
        else:
            self.accept(ctx, sample)
            outcome = "accepted"
        await ctx.flush()
        self.counts[outcome] += 1
        if self._progress is not None:
            self._progress.task_done(task.key)

    def accept(self, ctx: TaskContext, sample: dict[str, Any]) -> None:
        stable = {k: v for k, v in sample.items() if k not in self.recipe.volatile_fields}
        digest = json_hash(stable)
        sample_id = "s-" + short_hash(f"{ctx.task.key}|{digest}")
        sample = {"sample_id": sample_id, **sample}
        ctx.emit(
            SampleAccepted(
                sample_id=sample_id,
                content_hash=digest,
                sample=canonical_json(sample),
                label=self.recipe.label(sample),
            )
        )
