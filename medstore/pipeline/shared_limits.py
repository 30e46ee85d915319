"""One rate limiter and one budget for every worker of a sharded run.

``SharedLimits`` is plain Python; the Ray executor runs it as one (async) actor, and each worker's
runner talks to it through ``RemoteLimiter`` and ``RemoteBudget``, which have the shapes the
runner expects (``medstore.pipeline.limits``). An endpoint's ``--rpm``/``--tpm``, its adaptive
in-flight limit and the ``--max-cost`` cap are then counted once, over all workers.

Each worker is a *holder*: the slots and reservations it holds are tracked, so when a worker
dies mid-call, ``forget`` frees its slots and counts its reservations as spent (the server may
have billed calls whose answers never came back): the cap holds even through worker loss.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from medstore.pipeline.budget import BudgetExhausted, Reservation
from medstore.pipeline.ratelimit import RateLimiter


@dataclass
class Holding:
    slots: list[int] = field(default_factory=list)  # tokens of each call in flight
    reserved: float = 0.0


class SharedLimits:
    """The shared state: a RateLimiter, and spent/reserved USD against an optional cap."""

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        max_concurrency: int,
        window_s: float,
        max_cost: float | None,
    ) -> None:
        self.limiter = RateLimiter(
            rpm=rpm, tpm=tpm, max_concurrency=max_concurrency, window_s=window_s
        )
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        self.holdings: dict[str, Holding] = defaultdict(Holding)

    async def acquire(self, holder: str, tokens: int) -> None:
        await self.limiter.acquire(tokens)
        self.holdings[holder].slots.append(tokens)

    def release(
        self, holder: str, tokens: int, ok: bool, status: int | None, retry_after: float | None
    ) -> None:
        slots = self.holdings[holder].slots
        if tokens not in slots:  # already freed by ``forget``
            return
        slots.remove(tokens)
        self.limiter.release(tokens, ok=ok, status=status, retry_after=retry_after)

    def hold(self, holder: str, worst: float) -> str | None:
        """Reserve ``worst`` USD; the reason it does not fit, or None when it does."""
        if self.max_cost is None:
            return None
        if self.spent + self.reserved + worst > self.max_cost:
            return (
                f"the next call could cost ${worst:.4f}; ${self.spent:.4f} spent and "
                f"${self.reserved:.4f} in flight of the ${self.max_cost:g} budget (all workers)"
            )
        self.reserved += worst
        self.holdings[holder].reserved += worst
        return None

    def settle(self, holder: str, amount: float, cost: float | None) -> None:
        holding = self.holdings[holder]
        amount = min(amount, holding.reserved)  # nothing left once ``forget`` counted it
        holding.reserved -= amount
        self.reserved -= amount
        self.spent += cost or 0.0

    def forget(self, holder: str) -> None:
        """A dead worker: free its slots, and count what it had reserved as spent."""
        holding = self.holdings.pop(holder, Holding())
        for tokens in holding.slots:
            self.limiter.release(tokens, ok=False)
        self.reserved -= holding.reserved
        self.spent += holding.reserved

    def totals(self) -> dict[str, Any]:
        stats = self.limiter.stats
        return {
            "spent_usd": round(self.spent, 8),
            "reserved_usd": round(self.reserved, 8),
            "sent": stats.sent,
            "in_flight": self.limiter.in_flight,
            "congestion_signals": stats.congestion_signals,
        }


class RemoteLimiter:
    """The runner's limiter, answered by a SharedLimits actor."""

    def __init__(self, actor: Any, holder: str) -> None:
        self.actor = actor
        self.holder = holder

    async def acquire(self, tokens: int = 0) -> None:
        await self.actor.acquire.remote(self.holder, tokens)

    def release(
        self,
        tokens: int = 0,
        *,
        ok: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Not awaited: calls from one worker reach the actor in the order they were made.
        self.actor.release.remote(self.holder, tokens, ok, status, retry_after)


class RemoteBudget:
    """The runner's budget: the worst case is priced here, the cap is kept by the actor."""

    def __init__(self, actor: Any, holder: str, pricing: Any) -> None:
        self.actor = actor
        self.holder = holder
        self.pricing = pricing  # a local Budget: its prices price each call

    async def hold(self, messages: list[dict[str, str]], max_tokens: int) -> Reservation:
        worst = self.pricing.worst_case(messages, max_tokens)
        refusal = await self.actor.hold.remote(self.holder, worst)
        if refusal is not None:
            raise BudgetExhausted(refusal)
        return Reservation(worst)

    def settle(self, reservation: Reservation, cost: float | None) -> None:
        self.actor.settle.remote(self.holder, reservation.amount, cost)
