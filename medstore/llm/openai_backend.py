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


def error_message(body: str) -> str:
    """The server's own error text when it sent the usual {"error": {"message": ...}}."""
    try:
        error = json.loads(body).get("error")
    except (json.JSONDecodeError, AttributeError):
        return body[:200]
    if isinstance(error, dict):
        return str(error.get("message", error))[:200]
    return str(error)[:200]


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        timeout: float = 600.0,
        api_key_env: str = "OPENAI_API_KEY",
        response_format: str = "json_schema",
    ) -> None:
        super().__init__(model, (base_url or DEFAULT_BASE_URL).rstrip("/"), timeout)
        self.api_key_env = api_key_env
        self.response_format = response_format
        api_key = os.environ.get(api_key_env)
        if not api_key:
            if not is_loopback_url(self.base_url):
                raise BackendUnavailable(
                    f"{api_key_env} is not set: {self.base_url} needs an API key "
                    f"(export {api_key_env}=... or use --api-key-env NAME)"
                )
            api_key = "not-needed"  # local servers (vLLM, llama.cpp, Ollama) ignore it
        # The key lives only in this header, never in an event.
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def preflight(self) -> None:
        try:
            async with self.session().get(
                f"{self.base_url}/models",
                timeout=aiohttp.ClientTimeout(total=min(self.timeout, 10)),
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendUnavailable(f"cannot reach {self.base_url}: {exc!r}") from exc
        if status == 401:
            raise BackendUnavailable(
                f"{self.base_url} refused the API key in {self.api_key_env} (401)"
            )
        # Other statuses: some servers have no /models; the calls themselves will tell.

    def _response_format(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None or self.response_format == "none":
            return None
        if self.response_format == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": schema.get("title", "output"),
                "schema": schema,
                "strict": False,
            },
        }

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
        response_format = self._response_format(schema)
        if response_format is not None:
            body["response_format"] = response_format
        return body

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        url = f"{self.base_url}/chat/completions"
        try:
            async with self.session().post(
                url,
                data=orjson.dumps(self.request_body(messages, params, schema)),
                headers=JSON_CONTENT,
            ) as response:
                status = response.status
                headers = response.headers
                body = await response.text()
        except TimeoutError as exc:
            raise TransientError("timeout", f"no answer within {self.timeout:g} s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransientError("bad_response", f"truncated response body: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransientError("connection", f"connection failed: {exc!r}") from exc
        if status == 429:
            raise TransientError(
                "rate_limited",
                f"HTTP 429: {error_message(body)}",
                status=429,
                retry_after=retry_after_seconds(headers),
            )
        if status >= 500 or status == 408:
            raise TransientError(
                "server_error",
                f"HTTP {status}: {error_message(body)}",
                status=status,
                retry_after=retry_after_seconds(headers),
            )
        if status >= 400:
            raise PermanentError(
                "client_error", f"HTTP {status}: {error_message(body)}", status=status
            )
        return parse_chat_completion(body)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            await asyncio.sleep(0)  # let aiohttp finish closing its transports


def parse_chat_completion(body: str) -> Completion:
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TransientError("bad_response", f"unreadable response body: {body[:80]!r}") from exc
    usage = data.get("usage") or {}
    return Completion(
        text=text,
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
    )
