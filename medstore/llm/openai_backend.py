"""OpenAI-compatible teachers: OpenAI, DeepSeek, vLLM, llama.cpp server, Ollama's /v1.

The chat-completions exchange is spoken over aiohttp rather than through the openai SDK: the SDK
spends 1.4–1.8 ms of CPU per call on request/response transformation, which caps one process
at ~550 calls/s, below what a vLLM cluster serves. aiohttp needs ~0.25 ms. The wire format is
the documented one (POST {base_url}/chat/completions), so every compatible server works.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp
import orjson

from medstore.llm.base import (
    Backend,
    BackendUnavailable,
    Completion,
    GenerationParams,
    PermanentError,
    TransientError,
    is_loopback_url,
)
from medstore.llm.http import (
    DEFAULT_MAX_REPLY_BYTES,
    PinnedResolver,
    is_redirect,
    read_aiohttp,
    redirect_error,
)
from medstore.llm.negotiate import NegotiatedStructuredOutput, Negotiator
from medstore.llm.structured import (
    OPENAI_AUTO,
    OPENAI_MODES,
    StructuredOutputRefused,
    is_refusal,
    openai_fields,
)

JSON_CONTENT = {"Content-Type": "application/json"}
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_message(body: str, limit: int = 200) -> str:
    """The server's own error text when it sent the usual {"error": {"message": ...}}."""
    try:
        error = json.loads(body).get("error")
    except (json.JSONDecodeError, AttributeError):
        return body[:limit]
    if isinstance(error, dict):
        return str(error.get("message", error))[:limit]
    return str(error)[:limit]


def server_ms(headers: Any) -> float | None:
    """The server's own processing time: OpenAI and llama-cpp-python send openai-processing-ms."""
    value = headers.get("openai-processing-ms") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIBackend(NegotiatedStructuredOutput, Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        timeout: float = 600.0,
        api_key_env: str = "OPENAI_API_KEY",
        structured_output: str = "auto",
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        super().__init__(model, (base_url or DEFAULT_BASE_URL).rstrip("/"), timeout)
        self.api_key_env = api_key_env
        self.max_reply_bytes = max_reply_bytes
        self.negotiator = Negotiator(structured_output, OPENAI_AUTO, OPENAI_MODES, self.name)
        api_key = os.environ.get(api_key_env)
        if not api_key:
            if not is_loopback_url(self.base_url):
                raise BackendUnavailable(
                    f"{api_key_env} is not set: {self.base_url} needs an API key "
                    f"(export {api_key_env}=... or use --api-key-env NAME)"
                )
            api_key = "not-needed"  # local servers (vLLM, llama.cpp, Ollama) ignore it
        else:
            self.secrets = (api_key,)  # scrubbed from every event the run writes
        # The key lives only in this header, never in an event.
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None
        self._pins: dict[str, list[str]] | None = None

    def pin_addresses(self, host: str, addresses: list[str]) -> None:
        """Connect to ``host`` only at these addresses (the data-use guard's decision)."""
        self._pins = {host: list(addresses)}
        if self._session is not None and not self._session.closed:
            raise RuntimeError("pin_addresses must come before the first request")

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(
                    limit=0,
                    keepalive_timeout=60,
                    resolver=PinnedResolver(self._pins) if self._pins else None,
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,  # no proxy variables: see medstore/llm/http.py
            )
        return self._session

    async def preflight(self) -> None:
        try:
            async with self.session().get(
                f"{self.base_url}/models",
                timeout=aiohttp.ClientTimeout(total=min(self.timeout, 10)),
                allow_redirects=False,
            ) as response:
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendUnavailable(f"cannot reach {self.base_url}: {exc!r}") from exc
        if is_redirect(status):
            raise BackendUnavailable(
                str(redirect_error(status, headers, f"{self.base_url}/models"))
            )
        if status == 401:
            raise BackendUnavailable(
                f"{self.base_url} refused the API key in {self.api_key_env} (401)"
            )
        # Other statuses: some servers have no /models; the calls themselves will tell.

    def request_body(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        body.update(openai_fields(self.dialect(params, schema), schema))
        return body

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        """One chat completion. ``wire_ms`` (in ``extra``) runs from the send to the last byte."""
        url = f"{self.base_url}/chat/completions"
        data = orjson.dumps(self.request_body(messages, params, schema))
        started = time.perf_counter()
        try:
            async with self.session().post(
                url, data=data, headers=JSON_CONTENT, allow_redirects=False
            ) as response:
                status = response.status
                headers = response.headers
                body = await read_aiohttp(response, self.max_reply_bytes, url)
        except TimeoutError as exc:
            raise TransientError("timeout", f"no answer within {self.timeout:g} s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransientError("bad_response", f"truncated response body: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransientError("connection", f"connection failed: {exc!r}") from exc
        wire_ms = (time.perf_counter() - started) * 1000
        if is_redirect(status):
            raise redirect_error(status, headers, url)
        if status >= 400:
            raise self.http_error(status, headers, body, self.dialect(params, schema))
        completion = parse_chat_completion(body)
        completion.extra.update(wire_ms=wire_ms, server_ms=server_ms(headers))
        return completion

    @staticmethod
    def http_error(status: int, headers: Any, body: str, dialect: str | None) -> Exception:
        """The error an HTTP error status stands for; a refused dialect is a capability answer."""
        if is_refusal(dialect, status, body):
            message = " ".join(error_message(body, 300).split())
            return StructuredOutputRefused(
                dialect or "", f"{dialect} refused: HTTP {status}: {message}", status=status
            )
        if status == 429:
            return TransientError(
                "rate_limited",
                f"HTTP 429: {error_message(body)}",
                status=429,
                retry_after=retry_after_seconds(headers),
            )
        if status >= 500 or status == 408:
            return TransientError(
                "server_error",
                f"HTTP {status}: {error_message(body)}",
                status=status,
                retry_after=retry_after_seconds(headers),
            )
        return PermanentError(
            "client_error", f"HTTP {status}: {error_message(body)}", status=status
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            await asyncio.sleep(0)  # let aiohttp finish closing its transports


def loads_reply(body: str) -> Any:
    """The reply's JSON: orjson (several times faster), or the standard library for what
    orjson refuses but JSON allows (an integer beyond 64 bits), so no reply reads differently."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def parse_chat_completion(body: str) -> Completion:
    try:
        data = loads_reply(body)
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TransientError("bad_response", f"unreadable response body: {body[:80]!r}") from exc
    if not isinstance(text, str):
        raise TransientError("bad_response", f"message content is not text: {text!r:.80}")
    usage = data.get("usage") or {}
    return Completion(
        text=text,
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
    )
