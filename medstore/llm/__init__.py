"""Teacher backends behind one interface, and how the CLI picks one."""

from __future__ import annotations

import os

from .base import (
    Backend,
    BackendError,
    BackendUnavailable,
    Completion,
    GenerationParams,
    PermanentError,
    TransientError,
    is_loopback_url,
)

BACKENDS = ("local", "openai", "ollama")

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Completion",
    "GenerationParams",
    "PermanentError",
    "TransientError",
    "is_loopback_url",
    "make_backend",
    "resolve_backend_name",
]


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


def make_backend(
    backend: str | None,
    *,
    base_url: str | None = None,
    model: str | None = None,
    timeout: float = 600.0,
    api_key_env: str = "OPENAI_API_KEY",
    response_format: str = "json_schema",
) -> Backend:
    """Build the named backend; raises BackendUnavailable with a one-line reason."""
    name = resolve_backend_name(backend, base_url)
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(model, base_url)
    if name == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(
            model or os.environ.get("MEDSTORE_MODEL", "gpt-4o-mini"),
            base_url or configured_base_url(),
            timeout,
            api_key_env=api_key_env,
            response_format=response_format,
        )
    if name == "ollama":
        from .ollama_backend import OllamaBackend

        base_url = base_url or os.environ.get("MEDSTORE_BASE_URL")
        return OllamaBackend(
            model or os.environ.get("MEDSTORE_MODEL", "llama3.1"), base_url, timeout
        )
    raise BackendUnavailable(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
