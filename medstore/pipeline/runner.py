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
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medstore.llm import Backend
from medstore.pipeline.budget import Budget, BudgetExhausted, Estimate, Reservation, estimate_run
from medstore.pipeline.context import TaskContext, TaskFailedError
from medstore.pipeline.data_use import DataUseRefused
from medstore.pipeline.judge import judge_sample
from medstore.pipeline.limits import SendLimiter, SpendCap
from medstore.pipeline.options import RunOptions
from medstore.pipeline.progress import RunProgress
from medstore.pipeline.ratelimit import RateLimiter
from medstore.pipeline.stage import StageRejected
from medstore.pipeline.validator_version import judge_gate, validator_version
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
    TaskClaimed,
    TaskFailed,
    TaskStarted,
    make_record,
)
from medstore.warehouse.hashing import canonical_json, json_hash, short_hash, utc_after, uuid7
from medstore.warehouse.store import Warehouse, WarehouseError
from medstore.warehouse.writer import GRANTED, HELD, BatchWriter

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe

log = logging.getLogger(__name__)

REPAIR_TEMPLATE = "common/repair"
HOST = socket.gethostname()  # in every claim; asked once (a system call each time)


@dataclass
class RunResult:
    run_id: str
    status: str
    counts: Counter
    # Failed tasks by reason, and the first message of each reason (for the run's summary).
    failures: Counter = field(default_factory=Counter)
    failure_messages: dict[str, str] = field(default_factory=dict)


class Runner:
    """Runs one recipe over its source against one backend, writing everything to the warehouse."""

    def __init__(
        self,
        warehouse: Warehouse,
        recipe: Recipe,
        backend: Backend,
        options: RunOptions | None = None,
        judge: Backend | None = None,
        *,
        limiter: SendLimiter | None = None,
        budget: SpendCap | None = None,
    ) -> None:
        """``limiter`` and ``budget`` replace the run's own (a worker of a sharded run shares
        them with the others); by default they come from the options."""
        self.warehouse = warehouse
        self.recipe = recipe
        self.backend = backend
        self.judge = judge  # the optional judge stage's backend (medstore/pipeline/judge.py)
        self.options = options or RunOptions()
        self.run_id = uuid7()
        self.counts: Counter = Counter()
        self.failures: Counter = Counter()
        self.failure_messages: dict[str, str] = {}
        self.cost = 0.0
        self.validator_version = validator_version(
            recipe, judge_gate(judge.model if judge else None, self.options.min_judge_score)
        )
        # Finished tasks judged under another validator version (see ``plan``).
        self.stale: list[str] = []
        self.writer: BatchWriter
        self._stopping = False
        self._budget_exhausted = False
        self.price_factor = getattr(backend, "price_factor", 1.0)
        self.limiter: SendLimiter = limiter or RateLimiter(
            rpm=self.options.rpm,
            tpm=self.options.tpm,
            max_concurrency=self.options.concurrency,
            window_s=self.options.rate_window_s,
        )
        self.budget: SpendCap | None = budget
        if budget is None and self.options.max_cost is not None:
            self.budget = Budget(self.options.max_cost, backend.model, self.price_factor)
        # The source's items when a driver has read them already (a shard of a Ray run).
        self.source_items: list[Task | Skip] | None = None
        self._progress: RunProgress | None = None
        # API keys: scrubbed from every event of the run (a server may echo them back).
        self.secrets: tuple[str, ...] = tuple(
            s for b in (backend, judge) if b is not None for s in b.secrets if len(s) >= 8
        )
        self._workers: list[asyncio.Task] = []
        self._claimed: dict[str, tuple[Task, asyncio.Task]] = {}
        self._asked: dict[str, Task] = {}  # claims asked for, their tasks not yet started
        self._lost: set[str] = set()

    async def reserve(self, messages: list[dict[str, str]], max_tokens: int) -> Reservation | None:
        """Hold the worst-case cost of a call against --max-cost (raises BudgetExhausted)."""
        return await self.budget.hold(messages, max_tokens) if self.budget is not None else None

    def settle(self, reservation: Reservation | None, cost: float | None) -> None:
        if self.budget is not None and reservation is not None:
            self.budget.settle(reservation, cost)

    def plan(self, source: str | None) -> tuple[list[Task], list[Skip], list[Task]]:
        """Read the whole source (errors surface before anything is written) and pick the work."""
        tasks: list[Task] = []
        skips: list[Skip] = []
        limit = self.options.max_source_bytes
        items = self.source_items
        for item in self.recipe.read_source(source) if items is None else items:
            if isinstance(item, Skip):
                skips.append(item)
            elif (size := len(canonical_json(item.record).encode())) > limit:
                skips.append(
                    Skip(
                        item.source_id,
                        "source record too large",
                        f"{size:,} bytes as JSON, over --max-source-bytes {limit:,}",
                    )
                )
            else:
                tasks.append(item)
        if self.options.limit is not None:
            tasks = tasks[: self.options.limit]
        if self.options.shard is not None:  # after --limit: shards of one run partition its tasks
            tasks = [task for task in tasks if self.options.shard.owns(task.key)]
        finished = self.warehouse.finished_tasks(self.recipe.name, (task.key for task in tasks))
        stale = {key for key, version in finished.items() if version != self.validator_version}
        self.stale = [task.key for task in tasks if task.key in stale]
        redo = stale if self.options.redo else set()
        todo = [task for task in tasks if task.key not in finished or task.key in redo]
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
            try:
                await self.backend.preflight()
                if self.judge is not None:
                    await self.judge.preflight()
            except BaseException:
                await self.backend.aclose()  # no "Unclosed client session" after the error
                if self.judge is not None:
                    await self.judge.aclose()
                raise
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
        return RunResult(self.run_id, status, self.counts, self.failures, self.failure_messages)

    def submit(self, *events: Event) -> Future:
        """Run-level events (no task), through the one writer."""
        envelope = Envelope(self.run_id, self.recipe.name)
        return self.writer.submit([make_record(event, envelope, self.secrets) for event in events])

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
                    "validator_version": self.validator_version,
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
        self.counts["stale_done"] = 0 if self.options.redo else len(self.stale)
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
        if self.judge is not None:
            await self.judge.aclose()

    def check_data_use(self) -> None:
        """A credentialed source goes only where the data-use guard allows: decided before any
        call (preflight included) and logged either way."""
        for backend in (self.backend, self.judge):
            decision = self.recipe.data_use_decision(backend) if backend is not None else None
            if decision is None:
                continue
            self.warehouse.append([(decision, Envelope(self.run_id, self.recipe.name))])
            if not decision.allowed:
                raise DataUseRefused(decision.message)

    async def _run_all(self, todo: list[Task]) -> None:
        """Run every task this run can claim; wait for the ones other runs hold (they finish
        them, or their claims expire and this run takes them over)."""
        self._progress = RunProgress(
            self.recipe.name,
            len(todo),
            len(self.recipe.stages),
            enabled=self.options.progress,
            counts=self.counts,
            cost=lambda: self.cost,
        )
        self.writer = self._progress.watch(self.writer)  # the bar moves on each stage call
        self._stop_event = asyncio.Event()
        renewals = asyncio.create_task(self._renew_claims())
        with stop_signals(self._stop):
            try:
                pending = todo
                while pending and not self._stopping:
                    pending = await self._run_round(pending)
                    if pending and not self._stopping:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stop_event.wait(), self.poll_seconds)
            finally:
                renewals.cancel()
                await self._release_claims()

    @property
    def poll_seconds(self) -> float:
        return min(5.0, self.options.lease_seconds / 4)

    def _stop(self) -> None:
        self._stopping = True
        self._stop_event.set()
        for running in self._workers:
            running.cancel()

    async def _run_round(self, tasks: list[Task]) -> list[Task]:
        """One pass over ``tasks`` with the run's concurrency; returns those another run held."""
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task in tasks:
            queue.put_nowait(task)
        held: list[Task] = []

        def claim_next() -> tuple[Task, Future, float] | None:
            try:
                task = queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
            self._asked[task.key] = task
            return task, self.claim_future(task), time.monotonic()

        async def worker() -> None:
            # A worker asks for its next task as it starts one, and counts a finished task in
            # the background once its events are committed: neither wait (a commit each)
            # stands between one task and the next.
            finishing: list[asyncio.Task] = []
            asked = claim_next()
            try:
                while asked is not None and not self._stopping:
                    task, claimed, at = asked
                    answer = await asyncio.wrap_future(claimed)
                    if self._stopping:  # the last task stopped the run (the budget): let it go
                        break
                    if answer == GRANTED and time.monotonic() - at > self.renew_seconds:
                        answer = await self.claim(task)  # granted long ago: renewed first
                    asked = claim_next()
                    del self._asked[task.key]
                    if answer == GRANTED:
                        ending = await self._run_claimed(task)
                        if ending is not None:
                            finishing = [
                                *unsettled(finishing),
                                asyncio.create_task(self._finish(ending)),
                            ]
                    elif answer == HELD:
                        held.append(task)
                    else:  # another run finished it
                        self.counts["skipped_done"] += 1
                        self._advance(task)
            finally:  # a claim still asked for is let go with the others (_release_claims)
                await asyncio.gather(*finishing)

        self._workers = [
            asyncio.create_task(worker()) for _ in range(min(self.options.concurrency, len(tasks)))
        ]
        results = await asyncio.gather(*self._workers, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        return held

    @property
    def renew_seconds(self) -> float:
        """How often a held claim is renewed (a claim this old is renewed before its task)."""
        return self.options.lease_seconds / 3

    async def claim(self, task: Task, *, seconds: float | None = None) -> str:
        """Hold ``task`` for this run (or renew it, or with ``seconds=0`` let it go)."""
        return await asyncio.wrap_future(self.claim_future(task, seconds=seconds))

    def claim_future(self, task: Task, *, seconds: float | None = None) -> Future:
        """The claim handed to the writer; the future resolves to its answer."""
        event = TaskClaimed(
            owner=self.run_id,
            expires_utc=utc_after(self.options.lease_seconds if seconds is None else seconds),
            host=HOST,
            pid=os.getpid(),
        )
        record = make_record(event, Envelope(self.run_id, self.recipe.name, task.key))
        redo_version = self.validator_version if self.options.redo else None
        return self.writer.claim(record, self.run_id, redo_version=redo_version)

    async def _run_claimed(self, task: Task) -> TaskContext | None:
        """Run a claimed task (its events handed to the writer, see ``_finish``); if a renewal
        finds another run took it over, drop it."""
        running = asyncio.create_task(self._run_task(task))
        self._claimed[task.key] = (task, running)
        try:
            return await running
        except asyncio.CancelledError:
            if task.key not in self._lost or self._stopping:
                raise
            log.warning("task %s: its claim was taken over by another run; dropped", task.key)
            return None
        finally:
            self._claimed.pop(task.key, None)

    async def _renew_claims(self) -> None:
        """Renew every claim held, a few times per lease; a lost one stops its task."""
        while True:
            await asyncio.sleep(self.renew_seconds)
            for key, (task, running) in list(self._claimed.items()):
                if await self.claim(task) != GRANTED:
                    self._lost.add(key)
                    running.cancel()

    async def _release_claims(self) -> None:
        """Tasks left unfinished (Ctrl-C, a budget stop) are released for other runs at once."""
        unfinished = [task for task, _ in self._claimed.values()] + list(self._asked.values())
        for task in unfinished:
            with contextlib.suppress(WarehouseError):
                await self.claim(task, seconds=0)

    async def _run_task(self, task: Task) -> TaskContext:
        ctx = TaskContext(self, task)
        ctx.emit(TaskStarted(source_id=task.source_id, source_record=canonical_json(task.record)))
        try:
            sample = await self.recipe.run(task, ctx)
            if self.judge is not None:
                await judge_sample(ctx, self.judge, sample, self.options.min_judge_score)
        except StageRejected as rejected:
            fallback = canonical_json(rejected.fallback) if rejected.fallback is not None else None
            ctx.emit(
                SampleRejected(
                    reason=rejected.reason,
                    errors=rejected.errors,
                    fallback_sample=fallback,
                    validator_version=self.validator_version,
                )
            )
            outcome = "rejected"
        except TaskFailedError as failed:
            outcome = self.fail(ctx, TaskFailed(reason=failed.reason, message=str(failed)))
        except BudgetExhausted as exhausted:
            # Not finished, so a later run redoes it; no new task starts after this one.
            outcome = self.fail(ctx, TaskFailed(reason="budget_exhausted", message=str(exhausted)))
            self._budget_exhausted = self._stopping = True
        except (asyncio.CancelledError, WarehouseError):
            raise
        except Exception as exc:  # a recipe bug must not take the other tasks down
            log.exception("task %s failed", task.key)
            outcome = self.fail(ctx, TaskFailed(reason="internal_error", message=repr(exc)[:500]))
        else:
            self.accept(ctx, sample)
            outcome = "accepted"
        ctx.outcome = outcome
        ctx.submit_pending()
        return ctx

    async def _finish(self, ctx: TaskContext) -> None:
        """A task's outcome counts once all its events are committed."""
        await ctx.flush()
        self.counts[ctx.outcome] += 1
        self._advance(ctx.task)

    def _advance(self, task: Task) -> None:
        """One task more is done, here or by another run."""
        if self._progress is not None:
            self._progress.task_done(task.key)

    def fail(self, ctx: TaskContext, failed: TaskFailed) -> str:
        """Record a failed task, counted under its reason for the run's summary."""
        ctx.emit(failed)
        self.failures[failed.reason] += 1
        self.failure_messages.setdefault(failed.reason, failed.message)
        return "failed"

    def accept(self, ctx: TaskContext, sample: dict[str, Any]) -> None:
        ctx.emit(accepted_event(self.recipe, ctx.task.key, sample, self.validator_version))


def accepted_event(
    recipe: Recipe,
    task_key: str,
    sample: dict[str, Any],
    version: str,
    *,
    revalidated: bool = False,
) -> SampleAccepted:
    """The acceptance of ``sample``: its id is the task key and its content's hash, so the same
    content accepted again (a resume, a revalidation) keeps its id."""
    stable = {k: v for k, v in sample.items() if k not in recipe.volatile_fields}
    digest = json_hash(stable)
    sample_id = "s-" + short_hash(f"{task_key}|{digest}")
    sample = {"sample_id": sample_id, **sample}
    return SampleAccepted(
        sample_id=sample_id,
        content_hash=digest,
        sample=canonical_json(sample),
        label=recipe.label(sample),
        validator_version=version,
        revalidated=revalidated,
    )


def unsettled(countings: list[asyncio.Task]) -> list[asyncio.Task]:
    """The tasks' countings still waiting for their commit; a failed one raises its error.
    (Dropping the rest keeps a long run's memory flat: one asyncio task per finished task.)"""
    waiting = []
    for counting in countings:
        if not counting.done():
            waiting.append(counting)
        else:
            counting.result()
    return waiting


@contextlib.contextmanager
def stop_signals(stop: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM call ``stop`` while the block runs (main thread only)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop)
    try:
        yield
    finally:
        for signum in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
