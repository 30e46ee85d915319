"""Who may do what on the review pages, and how the review token is kept out of sight.

- The token is a ``SecretToken``: its repr is masked, so a traceback that prints locals (as
  Datasette's error handler does, with rich) shows ``SecretToken(***)``, never the value.
- A request that sends an ``Authorization`` header must send the right token: an invalid one
  is refused outright, not treated as "no header" (Datasette skips CSRF for Bearer requests).
- Failed logins are throttled per client address.
- ``next`` after a login or a verdict is a path on this site only.
"""

from __future__ import annotations

import hmac
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_FAILED_LOGINS = 5  # per client, within LOGIN_WINDOW_S
LOGIN_WINDOW_S = 60.0


class SecretToken:
    """The review token; compared in constant time, never shown."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._value.encode())

    def __repr__(self) -> str:
        return "SecretToken(***)"

    __str__ = __repr__


def bearer(headers: dict[str, str]) -> str | None:
    """The Bearer token an API client sent, or None when it sent no Authorization header."""
    header = headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@dataclass
class LoginThrottle:
    """At most MAX_FAILED_LOGINS failures per client per window; then a wait."""

    failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def wait_seconds(self, client: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        recent = self.failures[client]
        while recent and now - recent[0] > LOGIN_WINDOW_S:
            recent.popleft()
        if len(recent) < MAX_FAILED_LOGINS:
            return 0.0
        return LOGIN_WINDOW_S - (now - recent[0])

    def failed(self, client: str) -> None:
        self.failures[client].append(time.monotonic())


def safe_next(path: str | None) -> str:
    """Only a path on this site: no scheme, no host, no ``//`` or ``/\\`` (which browsers read
    as another host), no control characters."""
    if not path or not path.startswith("/") or "\\" in path or path.startswith("//"):
        return "/"
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        return "/"
    parts = urlsplit(path)
    return "/" if parts.scheme or parts.netloc else path
