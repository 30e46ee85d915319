"""What a recipe's ``run`` sees: stage generation (prompt → call → parse → validate → repair)
and events tagged with its task.

One LLM call goes through four small steps, each its own method: the request's identity and
its event, a replay from the log when the log already holds the answer, the send (rate limits,
budget and retries), and the response event.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from medstore.checks.gates import gate_records
from medstore.checks.parsing import ParseError, extract_json, validate_model
from medstore.llm import Backend, BackendError, Completion, GenerationParams
from medstore.llm.prices import cost_usd
from medstore.llm.structured import DIALECTS, StructuredOutputRefused
from medstore.pipeline.prompts import load_template
from medstore.pipeline.ratelimit import request_tokens
from medstore.pipeline.stage import Stage, StageRejected
from medstore.sources.base import Task
from medstore.warehouse.events import (
    CacheReplay,
    Envelope,
    Event,
    EventRecord,
    LLMError,
    LLMRequest,
    LLMResponse,
    ParseFailed,
    RepairRequested,
    ValidationVerdict,
    make_record,
)
from medstore.warehouse.hashing import json_hash

if TYPE_CHECKING:
    from medstore.pipeline.runner import Runner

REPAIR_TEMPLATE = "common/repair"


class TaskFailedError(Exception):
    """Transport failures outlasted the retries: the task is not finished and will be redone."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TaskContext:
    """A task's view of the run: ``generate`` a stage, ``emit`` events, ``flush`` them."""

    def __init__(self, runner: Runner, task: Task) -> None:
        self.runner = runner
        self.task = task
        self.futures: list[Future] = []
        self.pending: list[EventRecord] = []  # emitted, not yet handed to the writer
        self.outcome = ""  # accepted, rejected or failed, once the task has ended

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
        record = make_record(event, envelope, self.runner.secrets)
        self.pending.append(record)
        return record

    def submit_pending(self) -> None:
        """Hand the events emitted so far to the writer, as one batch.

        Called before anything that waits (a send, a retry's back-off, the task's end), so an
        event is never held back longer than the CPU work that follows it: a request is with
        the writer before it goes out, a paid answer before the next request or the task's end.
        One hand-over per await instead of one per event halves the writer's wake-ups.
        """
        if self.pending:
            records, self.pending = self.pending, []
            self.futures.append(self.runner.writer.submit(records))

    async def flush(self) -> None:
        """Wait until every event this task emitted is committed (raises if the writer failed).

        The writer commits in submission order and, once a write fails, fails everything after
        it, so the last future answers for all of them: one wake-up of the event loop per task
        instead of one per event.
        """
        self.submit_pending()
        futures, self.futures = self.futures, []
        if futures:
            await asyncio.wrap_future(futures[-1])

    async def generate(
        self,
        stage: Stage,
        variables: dict[str, Any],
        *,
        max_tokens: int | None = None,
        backend: Backend | None = None,
    ) -> Any:
        """Run one stage: prompt → call → parse → validate, repairing with the errors quoted.

        Returns the validated output (a pydantic model for schema stages, else the text), or
        raises StageRejected once the repairs are used up. ``backend``: another model than the
        run's teacher (the judge), with the same events, cache and retries.
        """
        messages = stage.template.render(variables)
        params = GenerationParams(
            temperature=stage.temperature,
            max_tokens=max_tokens or stage.max_tokens,
            seed=self.runner.options.seed,
        )
        errors: list[str] = []
        for attempt in range(stage.max_repairs + 1):
            text = await self.call(stage, messages, params, attempt, backend)
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
            params = replace(params, temperature=self.runner.options.repair_temperature)
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
            ValidationVerdict(
                passed=not errors,
                errors=errors,
                gates=gate_records(errors),
                validator_version=self.runner.validator_version,
            ),
            stage=stage.name,
            attempt=attempt,
        )
        return value, errors

    async def call(
        self,
        stage: Stage,
        messages: list[dict[str, str]],
        params: GenerationParams,
        attempt: int,
        backend: Backend | None = None,
    ) -> str:
        """One LLM call with cache, retries and events; returns the raw output text.

        A JSON stage goes out in the backend's structured-output dialect. When the server
        refuses that dialect and the backend moves to another one (``auto``), the call is sent
        again in it, as a new request: each request event records what was actually sent.
        """
        backend = backend or self.runner.backend
        for _ in DIALECTS:  # each refusal moves to another dialect, or fails
            try:
                sent = backend.structured_request(messages, params, stage.json_schema())
                return await self.call_once(stage, *sent, attempt, backend)
            except StructuredOutputRefused as refused:
                self.submit_pending()  # the refused request's events precede the decision
                if not await backend.structured_output_refused(refused):
                    raise TaskFailedError(refused.kind, f"{stage.name}: {refused}") from refused
        raise TaskFailedError("structured_output_refused", f"{stage.name}: every dialect refused")

    async def call_once(
        self,
        stage: Stage,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
        attempt: int,
        backend: Backend | None = None,
    ) -> str:
        """Record the request, replay it from the log or send it, record the response."""
        backend = backend or self.runner.backend
        request = self.record_request(stage, messages, params, schema, attempt, backend)
        request_hash = request.payload["request_hash"]
        replayed = self.replay(request_hash, request, stage.name, attempt)
        if replayed is not None:
            return replayed
        completion = await self.send(
            messages, params, schema, request, stage.name, attempt, backend
        )
        self.record_response(completion, request_hash, request, stage.name, attempt)
        return completion.text

    def record_request(
        self,
        stage: Stage,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
        attempt: int,
        backend: Backend | None = None,
    ) -> EventRecord:
        """The request event; its hash (backend identity, messages, parameters with the
        structured-output dialect, the schema sent) is the cache key."""
        backend = backend or self.runner.backend
        request_hash = json_hash(
            {
                **backend.identity(),
                "messages": messages,
                "params": params.as_dict(),
                "schema": schema,
            }
        )
        template = stage.template if attempt == 0 else load_template(REPAIR_TEMPLATE)
        return self.emit(
            LLMRequest(
                backend=backend.name,
                base_url=backend.base_url,
                model=backend.model,
                params=params.as_dict(),
                messages=messages,
                response_schema=schema,
                request_hash=request_hash,
                prompt_template=template.name,
                prompt_template_hash=template.hash,
            ),
            stage=stage.name,
            attempt=attempt,
        )

    def replay(
        self, request_hash: str, request: EventRecord, stage: str, attempt: int
    ) -> str | None:
        """The log's answer to an identical request, recorded as a cache replay; else None."""
        runner = self.runner
        if not runner.options.cache:
            return None
        # Asked of the log itself (an index lookup), not of a set loaded at start: answers that
        # other runs on this warehouse committed since are replayed too.
        cached = runner.warehouse.cached_response(request_hash)
        if cached is None:
            return None
        self.emit(
            CacheReplay(
                request_hash=request_hash,
                replayed_event_id=cached["event_id"],
                raw_output=cached["raw_output"],
            ),
            stage=stage,
            attempt=attempt,
            parent=request.event_id,
        )
        runner.counts["cache_replays"] += 1
        return cached["raw_output"]

    async def send(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
        request: EventRecord,
        stage: str,
        attempt: int,
        backend: Backend | None = None,
    ) -> Completion:
        """Send under the rate limits and the budget, retrying transient errors; each error is
        an event. Raises TaskFailedError once the retries are used up."""
        # A plain loop rather than tenacity: its per-call machinery cost ~0.2 ms of CPU per
        # request, which a run of one answer per call paid for nothing.
        policy = self.runner.options.retry
        retry_number = 0
        while True:
            try:
                return await self.send_once(messages, params, schema, backend)
            except BackendError as exc:
                will_retry = exc.transient and retry_number < policy.retries
                self.emit(
                    LLMError(
                        kind=exc.kind,
                        status=exc.status,
                        retry_number=retry_number,
                        message=str(exc)[:500],
                        retry_after_s=exc.retry_after,
                        will_retry=will_retry,
                    ),
                    stage=stage,
                    attempt=attempt,
                    parent=request.event_id,
                )
                if not will_retry:
                    if isinstance(exc, StructuredOutputRefused):
                        raise  # a capability answer: the caller decides (another dialect, or fail)
                    raise TaskFailedError(exc.kind, f"{stage}: {exc}") from exc
                retry_number += 1
                self.submit_pending()  # the error is logged before the back-off
                await asyncio.sleep(policy.delay(retry_number, exc))

    async def send_once(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
        backend: Backend | None = None,
    ) -> Completion:
        """One send: hold the worst-case cost and a rate-limit slot, call, settle both. The
        latency is the time on the wire (the backend's ``wire_ms`` when it measures it, else
        from the send on); the wait for a slot is ``queue_ms``. The cost is the backend's own
        model price (the judge's for the judge)."""
        runner = self.runner
        backend = backend or runner.backend
        self.submit_pending()  # the request (and any error before this retry) is logged first
        queued = time.perf_counter()
        tokens = request_tokens(messages, params.max_tokens)
        reservation = await runner.reserve(messages, params.max_tokens)
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
            raise
        runner.limiter.release(tokens)
        cost = cost_usd(backend.model, completion.input_tokens, completion.output_tokens)
        if cost is not None:
            cost = round(cost * runner.price_factor, 8)
        runner.settle(reservation, cost)
        completion.extra["cost_usd"] = cost
        completion.extra["queue_ms"] = (started - queued) * 1000
        completion.extra.setdefault("wire_ms", (time.perf_counter() - started) * 1000)
        return completion

    def record_response(
        self,
        completion: Completion,
        request_hash: str,
        request: EventRecord,
        stage: str,
        attempt: int,
    ) -> None:
        runner = self.runner
        cost = completion.extra.get("cost_usd")
        extra = completion.extra
        self.emit(
            LLMResponse(
                request_hash=request_hash,
                raw_output=completion.text,
                input_tokens=completion.input_tokens,
                output_tokens=completion.output_tokens,
                latency_ms=round(extra["wire_ms"], 3),
                finish_reason=completion.finish_reason,
                cost_usd=cost,
                model_reported=completion.model,
                queue_ms=round(extra["queue_ms"], 3),
                server_ms=extra.get("server_ms"),
            ),
            stage=stage,
            attempt=attempt,
            parent=request.event_id,
        )
        runner.counts["tokens"] += (completion.input_tokens or 0) + (completion.output_tokens or 0)
        runner.cost += cost or 0.0
