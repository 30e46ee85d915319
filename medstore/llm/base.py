"""The one interface every teacher backend implements, and the errors they raise."""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


@dataclass
class GenerationParams:
    temperature: float = 0.7
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None
    # The structured-output dialect a JSON stage is sent in (medstore.llm.structured); None
    # for text stages and for backends that constrain decoding themselves (the local model).
    structured_output: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Completion:
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BackendError(Exception):
    """A failed call. ``transient`` errors are retried; the rest fail the attempt at once."""

    transient = False

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class TransientError(BackendError):
    transient = True


class PermanentError(BackendError):
    transient = False


class BackendUnavailable(Exception):
    """The backend cannot be used at all (unreachable, no key, model missing): one-line reason."""


class Backend(ABC):
    """A teacher: given messages, parameters and an optional JSON schema, returns text + usage."""

    name: str = "backend"
    # Values (API keys) that must never reach the log: the run scrubs them from every event.
    secrets: tuple[str, ...] = ()

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 600.0) -> None:
        self.model = model
        self.base_url = base_url
        self.timeout = timeout

    def identity(self) -> dict[str, Any]:
        """What makes a response from this backend reproducible; part of every cache key."""
        return {"backend": self.name, "base_url": self.base_url, "model": self.model}

    async def preflight(self) -> None:
        """Raise BackendUnavailable if calls cannot possibly succeed. Default: nothing to check."""

    def structured_request(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
    ) -> tuple[list[dict[str, str]], GenerationParams, dict[str, Any] | None]:
        """What goes out for a stage with this output schema: the messages, the parameters (with
        the structured-output dialect) and the schema sent to the server, or None.

        Default: as given, for backends that constrain decoding to the schema themselves.
        """
        return messages, params, schema

    async def structured_output_refused(self, refused: BackendError) -> bool:
        """The server refused the dialect a call was sent in; True when another dialect is now
        in use (send again), False when the call fails. Default: it fails."""
        return False

    @abstractmethod
    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None:
        """Release connections or models."""


def is_loopback_url(url: str | None) -> bool:
    """True for URLs that stay on this machine (localhost, 127.0.0.0/8, ::1)."""
    if url is None:
        return True
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
