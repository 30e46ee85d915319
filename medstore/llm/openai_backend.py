"""OpenAI-compatible teachers via the SDK: OpenAI, DeepSeek, vLLM, llama.cpp, Ollama /v1."""

from __future__ import annotations

import os
from typing import Any

import openai

from .base import (
    Backend,
    BackendUnavailable,
    Completion,
    GenerationParams,
    PermanentError,
    TransientError,
    is_loopback_url,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
        # Retries are the runner's job, so each one becomes an event.
        self.client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0
        )

    async def preflight(self) -> None:
        try:
            await self.client.models.list(timeout=min(self.timeout, 10.0))
        except openai.APIConnectionError as exc:
            raise BackendUnavailable(
                f"cannot reach {self.base_url}: {exc.__cause__ or exc}"
            ) from exc
        except openai.AuthenticationError as exc:
            raise BackendUnavailable(
                f"{self.base_url} refused the API key in {self.api_key_env} (401)"
            ) from exc
        except openai.APIStatusError:
            pass  # some servers have no /models; the calls themselves will tell

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

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.seed is not None:
            kwargs["seed"] = params.seed
        response_format = self._response_format(schema)
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            response = await self.client.chat.completions.create(**kwargs)
        except openai.RateLimitError as exc:
            raise TransientError(
                "rate_limited",
                str(exc),
                status=429,
                retry_after=retry_after_seconds(exc.response.headers),
            ) from exc
        except openai.APITimeoutError as exc:
            raise TransientError("timeout", f"no answer within {self.timeout:g} s") from exc
        except openai.APIConnectionError as exc:
            raise TransientError(
                "connection", f"connection failed: {exc.__cause__ or exc}"
            ) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            error_class = TransientError if status >= 500 or status == 408 else PermanentError
            kind = "server_error" if status >= 500 else "client_error"
            raise error_class(
                kind,
                f"HTTP {status}: {exc.message}",
                status=status,
                retry_after=retry_after_seconds(exc.response.headers),
            ) from exc
        except (ValueError, openai.APIResponseValidationError) as exc:
            raise TransientError("bad_response", f"unreadable response body: {exc}") from exc
        if not response.choices:
            raise TransientError("bad_response", "response has no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason,
            model=response.model,
        )

    async def aclose(self) -> None:
        await self.client.close()
