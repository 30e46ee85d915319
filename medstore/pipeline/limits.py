"""What the runner asks before each send: a rate-limit slot and room in the budget.

A local run holds both in its own process (``RateLimiter``, ``Budget``); a run split over
several workers shares one of each (``medstore.pipeline.ray_limits``), so an endpoint's RPM/TPM
and the ``--max-cost`` cap hold across all of them. Either way the runner sees these two shapes.
"""

from __future__ import annotations

from typing import Protocol

from medstore.pipeline.budget import Reservation


class SendLimiter(Protocol):
    async def acquire(self, tokens: int = 0) -> None:
        """Wait until a request of ``tokens`` may be sent, then count it as sent."""

    def release(
        self,
        tokens: int = 0,
        *,
        ok: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Record how a sent request ended."""


class SpendCap(Protocol):
    async def hold(self, messages: list[dict[str, str]], max_tokens: int) -> Reservation:
        """Reserve a call's worst-case cost; raises BudgetExhausted when it does not fit."""

    def settle(self, reservation: Reservation, cost: float | None) -> None:
        """Replace a reservation with what the call cost."""
