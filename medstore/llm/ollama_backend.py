"""Ollama's native API (/api/chat, or /api/generate for a single prompt) over httpx."""

from __future__ import annotations

import json
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
from medstore.llm.openai_backend import retry_after_seconds

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


class OllamaBackend(Backend):
    name = "ollama"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        timeout: float = 600.0,
        endpoint: str = "chat",
    ) -> None:
        super().__init__(model, (base_url or DEFAULT_OLLAMA_URL).rstrip("/"), timeout)
        if endpoint not in ("chat", "generate"):
            raise ValueError(f"ollama endpoint must be chat or generate, not {endpoint!r}")
        self.endpoint = endpoint
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
        if schema is not None:
            body["format"] = schema
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
        try:
            response = await self.client.post(
                f"/api/{self.endpoint}", json=self._body(messages, params, schema)
            )
        except httpx.TimeoutException as exc:
            raise TransientError("timeout", f"no answer within {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise TransientError("connection", f"connection failed: {exc!r}") from exc
        status = response.status_code
        if status == 429:
            raise TransientError(
                "rate_limited",
                "HTTP 429",
                status=429,
                retry_after=retry_after_seconds(response.headers),
            )
        if status >= 500:
            raise TransientError(
                "server_error", f"HTTP {status}: {response.text[:200]}", status=status
            )
        if status >= 400:
            raise PermanentError(
                "client_error", f"HTTP {status}: {response.text[:200]}", status=status
            )
        try:
            data = response.json()
        except json.JSONDecodeError as exc:
            raise TransientError("bad_response", f"non-JSON body: {response.text[:80]!r}") from exc
        text = data["message"]["content"] if self.endpoint == "chat" else data.get("response", "")
        return Completion(
            text=text,
            input_tokens=data.get("prompt_eval_count"),
            output_tokens=data.get("eval_count"),
            finish_reason=data.get("done_reason", "stop"),
            model=data.get("model"),
        )

    async def aclose(self) -> None:
        await self.client.aclose()
