"""Rate limits and adaptive concurrency for calls to a teacher.

Two rules decide when a request may be sent:

* **limits** (``--rpm``, ``--tpm``): a sliding window. A request holds its place in the window
  from the moment it is sent until one window after its answer came back: the server saw it
  arrive somewhere in between, so however long the network took, a server counting arrivals
  over the same window never sees one request (or token) more than the limit.
* **adaptive concurrency** (AIMD, as TCP does): at most ``limit`` calls in flight. A 429 (or a
  503) halves the limit and pauses every send until the server's Retry-After has passed; each
  run of ``limit`` successes grows it by one, back up to ``--concurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CONGESTION_STATUSES = (429, 503)
DEFAULT_PAUSE_S = 1.0  # when a 429 comes without Retry-After


def estimate_tokens(text: str) -> int:
    """Tokens in a text, roughly (English BPE averages ~4 characters a token)."""
    return math.ceil(len(text) / 4)


def request_tokens(messages: list[dict[str, str]], max_tokens: int) -> int:
    """What a request counts against a TPM limit: its prompt plus the most it may generate."""
    return sum(estimate_tokens(m["content"]) + 4 for m in messages) + max_tokens


@dataclass
class LimiterStats:
    sent: int = 0
    congestion_signals: int = 0
    wait_s: float = 0.0
    lowest_limit: int = 0


class RateLimiter:
    """Admits sends under RPM/TPM limits and an adaptive in-flight limit; one per backend."""

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrency: int = 8,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if any(limit is not None and limit < 1 for limit in (rpm, tpm)):
            raise ValueError("rate limits must be at least 1")
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrency = max_concurrency
        self.window_s = window_s
        self.clock = clock
        self.limit = max_concurrency
        self.in_flight = 0
        self.paused_until = 0.0
        self.stats = LimiterStats(lowest_limit=max_concurrency)
        self._successes = 0
        self._in_flight_tokens = 0
        self._ended: deque[tuple[float, int]] = deque()  # (leaves the window at, tokens)
        self._ended_tokens = 0
        self._turn = asyncio.Lock()  # waiters are served in arrival order
        self._released = asyncio.Event()

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request of ``tokens`` may be sent now, then count it as sent."""
        started = self.clock()
        async with self._turn:
            while True:
                delay = self._delay(tokens)
                if delay <= 0:
                    break
                self._released.clear()
                timeout = None if math.isinf(delay) else delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), timeout)
            self.in_flight += 1
            self._in_flight_tokens += tokens
            self.stats.sent += 1
            self.stats.wait_s += self.clock() - started

    def release(
        self,
        tokens: int = 0,
        *,
        ok: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Record how a sent request ended; a failure's HTTP status tells if it was congestion."""
        now = self.clock()
        self.in_flight -= 1
        self._in_flight_tokens -= tokens
        if self.rpm is not None or self.tpm is not None:
            self._ended.append((now + self.window_s, tokens))
            self._ended_tokens += tokens
        if not ok and status in CONGESTION_STATUSES:
            self.stats.congestion_signals += 1
            self.limit = max(1, self.limit // 2)
            self._successes = 0
            pause = retry_after if retry_after is not None else DEFAULT_PAUSE_S
            self.paused_until = max(self.paused_until, now + pause)
            self.stats.lowest_limit = min(self.stats.lowest_limit, self.limit)
        elif ok:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.max_concurrency:
                self.limit += 1
                self._successes = 0
        self._released.set()

    def _delay(self, tokens: int) -> float:
        """Seconds until a send of ``tokens`` fits (inf: until a call in flight ends)."""
        now = self.clock()
        while self._ended and self._ended[0][0] <= now:
            self._ended_tokens -= self._ended.popleft()[1]
        waits = [self.paused_until - now]
        if self.in_flight >= self.limit:
            waits.append(math.inf)
        if self.rpm is not None:
            excess = self.in_flight + len(self._ended) + 1 - self.rpm
            if excess > 0:
                waits.append(
                    self._ended[excess - 1][0] - now if excess <= len(self._ended) else math.inf
                )
        if self.tpm is not None:
            excess = self._in_flight_tokens + self._ended_tokens + tokens - self.tpm
            if excess > 0 and (self.in_flight or self._ended):
                waits.append(self._time_to_free(excess, tokens) - now)
        return max(waits)

    def _time_to_free(self, excess: int, tokens: int) -> float:
        """When enough ended requests leave the window for ``excess`` tokens (inf: not before
        calls in flight end; a request larger than the limit itself waits for an empty window)."""
        if tokens > (self.tpm or 0) and not self.in_flight:
            return self._ended[-1][0]
        freed = 0
        for leaves_at, ended_tokens in self._ended:
            freed += ended_tokens
            if freed >= excess:
                return leaves_at
        return math.inf
