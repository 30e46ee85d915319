"""Teacher backends behind one interface, and how a run picks one.

The backends are plugins: ``builtin`` registers ``local``, ``openai`` and ``ollama`` through the
``register_backends`` hook, exactly as a third-party package would add its own.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medstore.llm.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    Completion,
    GenerationParams,
    PermanentError,
    TransientError,
    is_loopback_url,
)
from medstore.llm.structured import StructuredMode

__all__ = [
    "Backend",
    "BackendError",
    "BackendOptions",
    "BackendUnavailable",
    "Completion",
    "GenerationParams",
    "PermanentError",
    "TransientError",
    "is_loopback_url",
    "make_backend",
    "resolve_backend_name",
]


class BackendOptions(BaseModel):
    """Which teacher, and how to talk to it; ``cli.py run`` builds its teacher flags from this."""

    # Built when first validated (the CLI), not at import: a library run never uses it.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    backend: str | None = Field(
        None,
        description="Teacher backend [default: openai if --base-url, $MEDSTORE_BASE_URL or "
        "$OPENAI_BASE_URL, else the embedded local model].",
    )
    base_url: str | None = Field(None, description="OpenAI-compatible or Ollama server URL.")
    model: str | None = Field(None, description="Model name at the backend [$MEDSTORE_MODEL].")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never stored)."
    )
    structured_output: StructuredMode = Field(
        "auto",
        description="How JSON stages ask a server for schema-constrained output: auto "
        "negotiates (json_schema, and on refusal the next dialect); json_schema (OpenAI, vLLM, "
        "llama.cpp, Ollama /v1), json_object_schema (llama-cpp-python), guided_json (vLLM "
        "< 0.12), json_object (DeepSeek: the schema goes in the prompt), format (Ollama "
        "native), none. See the README's compatibility table.",
    )
    response_format: Literal["json_schema", "json_object", "none"] | None = Field(
        None, description="Deprecated alias of --structured-output."
    )
    timeout: float = Field(600.0, gt=0, description="Seconds to wait for one LLM answer.")
    batch: bool = Field(
        False,
        description="Send requests as OpenAI Batch API jobs (half price, hours); use a high "
        "--concurrency.",
    )
    batch_poll: float = Field(30.0, gt=0, description="Seconds between polls of a batch job.")
    max_reply_bytes: int = Field(
        2_000_000,
        ge=1_000,
        description="Refuse a reply larger than this (it would be stored and quoted back in "
        "every repair).",
    )

    @model_validator(mode="after")
    def take_deprecated_response_format(self) -> BackendOptions:
        """--response-format X (the old flag) means --structured-output X."""
        if self.response_format is None:
            return self
        if "structured_output" in self.model_fields_set and (
            self.structured_output != self.response_format
        ):
            raise ValueError(
                f"--response-format {self.response_format} contradicts --structured-output "
                f"{self.structured_output} (--response-format is its deprecated alias)"
            )
        self.structured_output = self.response_format
        return self


def configured_base_url() -> str | None:
    """The remote endpoint the environment names: $MEDSTORE_BASE_URL, else $OPENAI_BASE_URL."""
    return os.environ.get("MEDSTORE_BASE_URL") or os.environ.get("OPENAI_BASE_URL")


def resolve_backend_name(backend: str | None, base_url: str | None) -> str:
    """--backend wins; a base URL (flag or environment) means openai; else the local model."""
    if backend:
        return backend
    if base_url or configured_base_url():
        return "openai"
    return "local"


def make_backend(options: BackendOptions | None = None) -> Backend:
    """Build the backend the options name (any registered one); BackendUnavailable says why
    not in one line."""
    from medstore.plugins import backend_names, registry

    options = options or BackendOptions()
    name = resolve_backend_name(options.backend, options.base_url)
    factory = registry().backends.get(name)
    if factory is None:
        raise BackendUnavailable(
            f"unknown backend {name!r}: expected one of {', '.join(backend_names())}"
        )
    backend = factory(options)
    if options.batch:
        from medstore.llm.batch_api import BatchBackend
        from medstore.llm.openai_backend import OpenAIBackend

        if not isinstance(backend, OpenAIBackend):
            raise BackendUnavailable("--batch needs an OpenAI-compatible backend (--base-url)")
        # Requests that arrive together go in one job: wait for stragglers a moment, but never
        # longer than a few polls.
        backend = BatchBackend(
            backend, poll_interval_s=options.batch_poll, linger_s=min(1.0, 4 * options.batch_poll)
        )
    return backend
