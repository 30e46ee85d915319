"""Which structured-output dialect a run uses with one server: the configured one, or (``auto``)
the best one the server accepts, learnt from its first refusal.

``auto`` starts with the best dialect of the backend (``json_schema``: OpenAI, vLLM, llama.cpp
and Ollama's /v1 accept and enforce it, so they cost nothing extra). A refusal (an error whose
body names the parameter) moves the run to the next dialect, once for all its calls. A dialect
whose acceptance does not prove enforcement (``json_object_schema``: llama-cpp-python enforces
the schema, DeepSeek accepts the request and ignores it) is checked first with one tiny probe
whose prompt contradicts its schema. Every decision is a ``structured_output_decision`` event.
A configured dialect that the server refuses fails each call at once, without sending again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from medstore.llm.base import (
    BackendError,
    BackendUnavailable,
    Completion,
    GenerationParams,
)
from medstore.llm.structured import (
    PROBE_MAX_TOKENS,
    PROBE_MESSAGES,
    PROBE_SCHEMA,
    StructuredOutputRefused,
    is_constrained,
    probe_enforced,
    with_schema_in_prompt,
)
from medstore.warehouse.events import Event, StructuredOutputDecision

Probe = Callable[[str], Awaitable[Completion]]
# Accepting these proves nothing: the server may drop the schema and answer any JSON.
VERIFY_BY_PROBE = frozenset({"json_object_schema"})


class Negotiator:
    """One run's dialect for one server; safe to share between the run's concurrent calls."""

    def __init__(
        self, requested: str, auto_order: tuple[str, ...], allowed: tuple[str, ...], backend: str
    ) -> None:
        if requested != "auto" and requested not in allowed:
            raise BackendUnavailable(
                f"--structured-output {requested} is not a dialect the {backend} backend speaks "
                f"(use auto, {', '.join(allowed)})"
            )
        self.requested = requested
        self.order = auto_order if requested == "auto" else (requested,)
        self.mode = self.order[0]
        self.refusal: StructuredOutputRefused | None = None
        self.tried: list[dict[str, Any]] = []
        self._emit: Callable[[Event], Future] | None = None
        self._where: dict[str, Any] = {}
        self._announced = False
        self._lock: asyncio.Lock | None = None

    def bind(self, emit: Callable[[Event], Future], where: dict[str, Any]) -> None:
        """Where decisions are recorded (the run's log) and the server they are about."""
        self._emit = emit
        self._where = where

    def current(self) -> str:
        """The dialect to send now; the refusal itself once the configured one was refused."""
        if self.refusal is not None:
            raise self.refusal
        if not self._announced:
            self._announced = True
            self._record("auto_first_choice" if self.requested == "auto" else "configured")
        return self.mode

    async def refused(self, refused: StructuredOutputRefused, probe: Probe) -> bool:
        """The server refused ``refused.mode``: True when the run moved to another dialect."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.refusal is not None:  # the configured dialect was refused already
                return False
            if refused.mode != self.mode:  # a concurrent call already moved the run on
                return True
            self.tried.append(attempt(refused.mode, "refused", refused))
            if self.requested != "auto":
                self.refusal = refused
                self._record("configured_refused")
                return False
            for candidate in self.order[self.order.index(self.mode) + 1 :]:
                if await self._usable(candidate, probe):
                    self.mode = candidate
                    self._record("auto_after_refusal")
                    return True
        raise AssertionError("unreachable: the last dialect, none, sends nothing to refuse")

    async def _usable(self, mode: str, probe: Probe) -> bool:
        """Whether to move to ``mode``; a probe decides when acceptance proves nothing."""
        if mode not in VERIFY_BY_PROBE:
            return True
        try:
            completion = await probe(mode)
        except StructuredOutputRefused as exc:
            self.tried.append(attempt(mode, "refused", exc))
            return False
        except BackendError as exc:
            # A probe lost to a timeout says nothing about the dialect: use it; outputs are
            # validated after in any case.
            self.tried.append(attempt(mode, "probe_failed", exc))
            return True
        enforced = probe_enforced(completion.text)
        outcome = "enforced" if enforced else "ignored"
        self.tried.append(
            {
                "mode": mode,
                "outcome": outcome,
                "probe_output": completion.text[:200],
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
            }
        )
        return enforced

    def _record(self, rule: str) -> None:
        if self._emit is None:
            return
        self._emit(
            StructuredOutputDecision(
                **self._where,
                requested=self.requested,
                mode=self.mode,
                constrained=is_constrained(self.mode),
                rule=rule,
                tried=list(self.tried),
            )
        )


def attempt(mode: str, outcome: str, error: BackendError) -> dict[str, Any]:
    return {"mode": mode, "outcome": outcome, "status": error.status, "message": str(error)[:300]}


class NegotiatedStructuredOutput:
    """What a server backend adds to ``Backend`` to send JSON stages in a negotiated dialect."""

    negotiator: Negotiator
    name: str
    base_url: str | None
    model: str

    def bind_log(self, warehouse: Any, emit: Callable[[Event], Future]) -> None:
        """Called by the runner: decisions go into the run's log."""
        self.negotiator.bind(
            emit, {"backend": self.name, "base_url": self.base_url, "model": self.model}
        )

    def structured_request(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
    ) -> tuple[list[dict[str, str]], GenerationParams, dict[str, Any] | None]:
        if schema is None:
            return messages, params, None
        mode = self.negotiator.current()
        params = replace(params, structured_output=mode)
        if is_constrained(mode):
            return messages, params, schema
        return with_schema_in_prompt(messages, schema), params, None

    def dialect(self, params: GenerationParams, schema: dict[str, Any] | None) -> str | None:
        """The dialect of a call: the one its parameters name, else (a caller that did not go
        through ``structured_request``) the run's current one when there is a schema."""
        if params.structured_output is not None:
            return params.structured_output
        return self.negotiator.mode if schema is not None else None

    async def structured_output_refused(self, refused: BackendError) -> bool:
        if not isinstance(refused, StructuredOutputRefused):
            return False
        return await self.negotiator.refused(refused, self.probe)

    async def probe(self, mode: str) -> Completion:
        """One tiny request in ``mode`` with a schema its prompt contradicts."""
        params = GenerationParams(
            temperature=0.0, max_tokens=PROBE_MAX_TOKENS, structured_output=mode
        )
        return await self.complete(PROBE_MESSAGES, params, PROBE_SCHEMA)  # type: ignore[attr-defined]
