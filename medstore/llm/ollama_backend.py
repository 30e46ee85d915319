"""Ollama's native API (/api/chat, or /api/generate for a single prompt) over httpx."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from medstore.llm.base import (
    Backend,
    BackendUnavailable,
    Completion,
    GenerationParams,
    PermanentError,
    TransientError,
)
from medstore.llm.negotiate import NegotiatedStructuredOutput, Negotiator
from medstore.llm.openai_backend import retry_after_seconds
from medstore.llm.structured import (
    OLLAMA_AUTO,
    OLLAMA_MODES,
    StructuredOutputRefused,
    is_refusal,
    ollama_fields,
)

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


class OllamaBackend(NegotiatedStructuredOutput, Backend):
    name = "ollama"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        timeout: float = 600.0,
        endpoint: str = "chat",
        structured_output: str = "auto",
    ) -> None:
        super().__init__(model, (base_url or DEFAULT_OLLAMA_URL).rstrip("/"), timeout)
        if endpoint not in ("chat", "generate"):
            raise ValueError(f"ollama endpoint must be chat or generate, not {endpoint!r}")
        self.endpoint = endpoint
        self.negotiator = Negotiator(structured_output, OLLAMA_AUTO, OLLAMA_MODES, self.name)
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )

    async def preflight(self) -> None:
        try:
            response = await self.client.get("/api/tags", timeout=min(self.timeout, 10.0))
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach Ollama at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise BackendUnavailable(
                f"{self.base_url}/api/tags answered HTTP {response.status_code}"
            )

    def _body(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {
            "temperature": params.temperature,
            "num_predict": params.max_tokens,
        }
        if params.top_p is not None:
            options["top_p"] = params.top_p
        if params.seed is not None:
            options["seed"] = params.seed
        body: dict[str, Any] = {"model": self.model, "stream": False, "options": options}
        body.update(ollama_fields(self.dialect(params, schema), schema))
        if self.endpoint == "chat":
            body["messages"] = messages
        else:
            body["system"] = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            body["prompt"] = "\n\n".join(m["content"] for m in messages if m["role"] != "system")
        return body

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        started = time.perf_counter()
        try:
            response = await self.client.post(
                f"/api/{self.endpoint}", json=self._body(messages, params, schema)
            )
        except httpx.TimeoutException as exc:
            raise TransientError("timeout", f"no answer within {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise TransientError("connection", f"connection failed: {exc!r}") from exc
        wire_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            raise http_error(response, self.dialect(params, schema))
        try:
            data = response.json()
        except json.JSONDecodeError as exc:
            raise TransientError("bad_response", f"non-JSON body: {response.text[:80]!r}") from exc
        text = data["message"]["content"] if self.endpoint == "chat" else data.get("response", "")
        total_ns = data.get("total_duration")
        return Completion(
            text=text,
            input_tokens=data.get("prompt_eval_count"),
            output_tokens=data.get("eval_count"),
            finish_reason=data.get("done_reason", "stop"),
            model=data.get("model"),
            extra={"wire_ms": wire_ms, "server_ms": total_ns / 1e6 if total_ns else None},
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def http_error(response: httpx.Response, dialect: str | None) -> Exception:
    """The error an HTTP error status stands for; a refused ``format`` is a capability answer."""
    status, text = response.status_code, response.text
    if is_refusal(dialect, status, text):
        message = " ".join(text[:300].split())
        return StructuredOutputRefused(
            dialect or "", f"{dialect} refused: HTTP {status}: {message}", status=status
        )
    if status == 429:
        return TransientError(
            "rate_limited",
            "HTTP 429",
            status=429,
            retry_after=retry_after_seconds(response.headers),
        )
    if status >= 500:
        return TransientError("server_error", f"HTTP {status}: {text[:200]}", status=status)
    return PermanentError("client_error", f"HTTP {status}: {text[:200]}", status=status)
