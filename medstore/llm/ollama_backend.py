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
from medstore.llm.http import (
    DEFAULT_MAX_REPLY_BYTES,
    is_redirect,
    read_httpx,
    redirect_error,
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
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        super().__init__(model, (base_url or DEFAULT_OLLAMA_URL).rstrip("/"), timeout)
        if endpoint not in ("chat", "generate"):
            raise ValueError(f"ollama endpoint must be chat or generate, not {endpoint!r}")
        self.endpoint = endpoint
        self.negotiator = Negotiator(structured_output, OLLAMA_AUTO, OLLAMA_MODES, self.name)
        self.max_reply_bytes = max_reply_bytes
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            follow_redirects=False,  # see medstore/llm/http.py
            trust_env=False,  # no proxy variables
        )

    def pin_addresses(self, host: str, addresses: list[str]) -> None:
        """Connect to ``host`` only at the first of these addresses (the data-use guard's
        decision): httpx has no resolver hook, so the client talks to the address itself and
        sends the name in the Host header. Plain HTTP only (Ollama's own is)."""
        url = httpx.URL(self.base_url)
        if url.scheme != "http":
            return
        self.client.base_url = url.copy_with(host=addresses[0])
        self.client.headers["Host"] = url.netloc.decode()

    async def preflight(self) -> None:
        try:
            response = await self.client.get("/api/tags", timeout=min(self.timeout, 10.0))
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach Ollama at {self.base_url}: {exc}") from exc
        if is_redirect(response.status_code):
            url = f"{self.base_url}/api/tags"
            raise BackendUnavailable(
                str(redirect_error(response.status_code, response.headers, url))
            )
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
        url = f"{self.base_url}/api/{self.endpoint}"
        started = time.perf_counter()
        try:
            async with self.client.stream(
                "POST", f"/api/{self.endpoint}", json=self._body(messages, params, schema)
            ) as response:
                status, headers = response.status_code, response.headers
                text = await read_httpx(response, self.max_reply_bytes, url)
        except httpx.TimeoutException as exc:
            raise TransientError("timeout", f"no answer within {self.timeout:g} s") from exc
        except httpx.TransportError as exc:
            raise TransientError("connection", f"connection failed: {exc!r}") from exc
        wire_ms = (time.perf_counter() - started) * 1000
        if is_redirect(status):
            raise redirect_error(status, headers, url)
        if status >= 400:
            raise http_error(status, headers, text, self.dialect(params, schema))
        completion = parse_ollama(text, self.endpoint)
        completion.extra["wire_ms"] = wire_ms
        return completion

    async def aclose(self) -> None:
        await self.client.aclose()


def parse_ollama(text: str, endpoint: str) -> Completion:
    """A native Ollama answer; any other body (not JSON, or JSON of another shape) is a
    ``bad_response``, retried, never a crash."""
    try:
        data = json.loads(text)
        content = data["message"]["content"] if endpoint == "chat" else data["response"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TransientError("bad_response", f"not an Ollama answer: {text[:80]!r}") from exc
    if not isinstance(content, str):
        raise TransientError("bad_response", f"the answer's content is not text: {content!r:.80}")
    total_ns = data.get("total_duration")
    return Completion(
        text=content,
        input_tokens=data.get("prompt_eval_count"),
        output_tokens=data.get("eval_count"),
        finish_reason=data.get("done_reason", "stop"),
        model=data.get("model"),
        extra={"server_ms": total_ns / 1e6 if isinstance(total_ns, int | float) else None},
    )


def http_error(status: int, headers: Any, text: str, dialect: str | None) -> Exception:
    """The error an HTTP error status stands for; a refused ``format`` is a capability answer."""
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
            retry_after=retry_after_seconds(headers),
        )
    if status >= 500:
        return TransientError("server_error", f"HTTP {status}: {text[:200]}", status=status)
    return PermanentError("client_error", f"HTTP {status}: {text[:200]}", status=status)
