"""The async scheduler: tasks, concurrency, retries, cache, resume, repairs, progress.

Every step a task takes becomes an event. Resume needs no state of its own: tasks whose latest
state in the log is accepted or rejected are skipped; anything else (in flight at a crash,
failed) is redone, and its finished LLM calls are replayed from the log rather than paid again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tqdm import tqdm

from .budget import Budget, BudgetExhausted, Estimate, Reservation, estimate_run
from .data_use import DataUseRefused
from .events import (
    CacheReplay,
    Envelope,
    Event,
    EventRecord,
    LLMError,
    LLMRequest,
    LLMResponse,
    ParseFailed,
    RepairRequested,
    RunFinished,
    RunStarted,
    SampleAccepted,
    SampleRejected,
    SourceSkipped,
    TaskFailed,
    TaskStarted,
    ValidationVerdict,
    make_record,
)
from .hashing import canonical_json, json_hash, short_hash, uuid7
from .llm import Backend, BackendError, GenerationParams
from .llm.prices import cost_usd
from .prompts import load_template
from .quality import ParseError, extract_json, validate_model
from .ratelimit import RateLimiter, request_tokens
from .recipes.base import Recipe, Skip, Stage, StageRejected, Task
from .resources import code_version
from .shard import Shard
from .store import BatchWriter, Warehouse, WarehouseError

log = logging.getLogger(__name__)

REPAIR_TEMPLATE = "common/repair"


@dataclass
class RetryPolicy:
    retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0

    def wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter; a server's Retry-After wins when it gives one."""
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        backoff = min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
        return backoff * (0.5 + random.random() / 2)


@dataclass
class RunOptions:
    limit: int | None = None
    concurrency: int = 8
    use_cache: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    repair_temperature: float = 0.30
    seed: int | None = None
    progress: bool = True
    config: dict[str, Any] = field(default_factory=dict)
    shard: Shard | None = None
    rpm: int | None = None
    tpm: int | None = None
    rate_window_s: float = 60.0  # the window --rpm/--tpm count over (shorter in tests)
    max_cost_usd: float | None = None


@dataclass
class RunResult:
    run_id: str
    status: str
    counts: Counter


class TaskFailedError(Exception):
    """Transport failures outlasted the retries: the task is not finished and will be redone."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TaskContext:
    """What a recipe's ``run`` sees: stage generation, and events tagged with its task."""

    def __init__(self, runner: Runner, task: Task) -> None:
        self.runner = runner
        self.task = task
        self.futures: list[Future] = []

    def emit(
        self,
        event: Event,
        *,
        stage: str | None = None,
        attempt: int | None = None,
        parent: str | None = None,
    ) -> EventRecord:
        envelope = Envelope(
            self.runner.run_id, self.runner.recipe.name, self.task.key, stage, attempt, parent
        )
        record = make_record(event, envelope)
        self.futures.append(self.runner.writer.submit([record]))
        return record

    async def flush(self) -> None:
        """Wait until every event this task emitted is committed (raises if the writer failed).

        The writer commits in submission order and, once a write fails, fails everything after
        it, so the last future answers for all of them: one wake-up of the event loop per task
        instead of one per event.
        """
        futures, self.futures = self.futures, []
        if futures:
            await asyncio.wrap_future(futures[-1])

    async def generate(
        self, stage: Stage, variables: dict[str, Any], *, max_tokens: int | None = None
    ) -> Any:
        """Run one stage: prompt → call → parse → validate, repairing with the errors quoted.

        Returns the validated output (a pydantic model for schema stages, else the text), or
        raises StageRejected once the repairs are used up.
        """
        runner = self.runner
        messages = stage.template.render(variables)
        params = GenerationParams(
            temperature=stage.temperature,
            max_tokens=max_tokens or stage.max_tokens,
            seed=runner.options.seed,
        )
        errors: list[str] = []
        for attempt in range(stage.max_repairs + 1):
            text = await self.call(stage, messages, params, attempt)
            value, errors = self.check(stage, text, variables, attempt)
            if not errors:
                return value
            if attempt == stage.max_repairs:
                break
            self.emit(
                RepairRequested(repair_attempt=attempt + 1, errors=errors),
                stage=stage.name,
                attempt=attempt + 1,
            )
            repair = load_template(REPAIR_TEMPLATE).render(
                {"errors": "\n".join(f"- {error}" for error in errors)}
            )
            # The model sees the original instructions, its rejected answer, and what to fix.
            messages = [*messages[:2], {"role": "assistant", "content": text}, repair[1]]
            params = replace(params, temperature=runner.options.repair_temperature)
        raise StageRejected(f"{stage.name}: invalid after {stage.max_repairs} repairs", errors)

    def check(
        self, stage: Stage, text: str, variables: dict[str, Any], attempt: int
    ) -> tuple[Any, list[str]]:
        value: Any = text
        errors: list[str] = []
        if stage.schema is not None:
            try:
                parsed = extract_json(text)
            except ParseError as exc:
                self.emit(ParseFailed(errors=[str(exc)]), stage=stage.name, attempt=attempt)
                return None, [str(exc)]
            value, errors = validate_model(stage.schema, parsed)
        elif not text.strip():
            errors = ["the output is empty"]
        if not errors:
            for validator in stage.validators:
                errors += validator(value, variables)
        self.emit(
            ValidationVerdict(passed=not errors, errors=errors), stage=stage.name, attempt=attempt
        )
        return value, errors

    async def call(
        self, stage: Stage, messages: list[dict[str, str]], params: GenerationParams, attempt: int
    ) -> str:
        """One LLM call with cache, retries and events; returns the raw output text."""
        runner = self.runner
        backend = runner.backend
        schema = stage.json_schema()
        request_hash = json_hash(
            {
                **backend.identity(),
                "messages": messages,
                "params": params.as_dict(),
                "schema": schema,
            }
        )
        template = stage.template
        request = self.emit(
            LLMRequest(
                backend=backend.name,
                base_url=backend.base_url,
                model=backend.model,
                params=params.as_dict(),
                messages=messages,
                response_schema=schema,
                request_hash=request_hash,
                prompt_template=template.name if attempt == 0 else REPAIR_TEMPLATE,
                prompt_template_hash=template.hash
                if attempt == 0
                else load_template(REPAIR_TEMPLATE).hash,
            ),
            stage=stage.name,
            attempt=attempt,
        )
        if runner.options.use_cache and request_hash in runner.answered:
            cached = runner.warehouse.cached_response(request_hash)
            if cached is not None:
                self.emit(
                    CacheReplay(
                        request_hash=request_hash,
                        replayed_event_id=cached["event_id"],
                        raw_output=cached["raw_output"],
                    ),
                    stage=stage.name,
                    attempt=attempt,
                    parent=request.event_id,
                )
                runner.counts["cache_replays"] += 1
                return cached["raw_output"]

        policy = runner.options.retry
        tokens = request_tokens(messages, params.max_tokens)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.retries + 1),
            retry=retry_if_exception(lambda exc: isinstance(exc, BackendError) and exc.transient),
            wait=policy.wait,
            reraise=True,
        )
        try:
            async for try_state in retrying:
                with try_state:
                    retry_number = try_state.retry_state.attempt_number - 1
                    reservation = runner.reserve(messages, params.max_tokens)
                    await runner.limiter.acquire(tokens)
                    started = time.perf_counter()
                    try:
                        completion = await backend.complete(messages, params, schema)
                    except BaseException as exc:
                        runner.limiter.release(
                            tokens,
                            ok=False,
                            status=getattr(exc, "status", None),
                            retry_after=getattr(exc, "retry_after", None),
                        )
                        runner.settle(reservation, None)
                        if not isinstance(exc, BackendError):
                            raise
                        self.emit(
                            LLMError(
                                kind=exc.kind,
                                status=exc.status,
                                retry_number=retry_number,
                                message=str(exc)[:500],
                                retry_after_s=exc.retry_after,
                                will_retry=exc.transient and retry_number < policy.retries,
                            ),
                            stage=stage.name,
                            attempt=attempt,
                            parent=request.event_id,
                        )
                        raise
        except BackendError as exc:
            raise TaskFailedError(exc.kind, f"{stage.name}: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        runner.limiter.release(tokens)
        cost = cost_usd(backend.model, completion.input_tokens, completion.output_tokens)
        if cost is not None:
            cost = round(cost * runner.price_factor, 8)
        runner.settle(reservation, cost)
        self.emit(
            LLMResponse(
                request_hash=request_hash,
                raw_output=completion.text,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                latency_ms=round(latency_ms, 3),
                finish_reason=completion.finish_reason,
                cost_usd=cost,
                model_reported=completion.model,
            ),
            stage=stage.name,
            attempt=attempt,
            parent=request.event_id,
        )
        runner.answered.add(request_hash)
        runner.counts["tokens"] += (completion.input_tokens or 0) + (completion.output_tokens or 0)
        runner.cost += cost or 0.0
        return completion.text


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
            Budget(self.options.max_cost_usd, backend.model, self.price_factor)
            if self.options.max_cost_usd is not None
            else None
        )
        self._progress: tqdm | None = None

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
        if self.options.use_cache and todo:
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
        envelope = Envelope(self.run_id, self.recipe.name)
        bind_log = getattr(self.backend, "bind_log", None)
        if bind_log is not None:  # a backend that records its own events (Batch API jobs)
            bind_log(
                self.warehouse, lambda event: self.writer.submit([make_record(event, envelope)])
            )
        self.writer.submit(
            [
                make_record(
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
                    ),
                    envelope,
                )
            ]
        )
        if skips:
            self.writer.submit(
                [
                    make_record(
                        SourceSkipped(source_id=s.source_id, reason=s.reason, detail=s.detail),
                        envelope,
                    )
                    for s in skips
                ]
            )
        self.counts["skipped_done"] = len(tasks) - len(todo)
        self.counts["source_skipped"] = len(skips)
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
            if self._progress is not None:
                self._progress.close()
            counts = {k: int(v) for k, v in self.counts.items()}
            finished = self.writer.submit(
                [make_record(RunFinished(status=status, counts=counts), envelope)]
            )
            self.writer.close()
            if finished.exception() is None and status != "failed":
                log.info("run %s %s", self.run_id, status)
            await self.backend.aclose()
        return RunResult(self.run_id, status, self.counts)

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
        self._progress = tqdm(
            total=len(todo),
            desc=self.recipe.name,
            unit="task",
            disable=not self.options.progress or None,
            dynamic_ncols=True,
        )
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
            self._progress.update(1)
            self._progress.set_postfix(
                ok=self.counts["accepted"],
                rejected=self.counts["rejected"],
                failed=self.counts["failed"],
                tokens=self.counts["tokens"],
                cost=f"${self.cost:.4f}",
                refresh=False,
            )

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
