"""A spending cap: `run --max-cost USD` stops the run cleanly before the cap is passed.

Before each paid call the budget reserves the most that call can cost (its prompt, counted
generously, plus every token it may generate); the reservation is replaced by the real cost when
the answer arrives. A call whose reservation does not fit is not sent: the task is marked failed
with reason ``budget_exhausted`` (so a later run with more budget redoes it) and no new task
starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medstore.llm.prices import model_price
from medstore.pipeline.ratelimit import estimate_tokens
from medstore.warehouse.hashing import canonical_json


class BudgetExhausted(Exception):
    """The next call could take the run past --max-cost, so it was not sent."""


class PriceUnknown(Exception):
    """--max-cost needs a price for the model: one-line reason."""


def worst_case_input_tokens(messages: list[dict[str, str]]) -> int:
    """An upper bound on prompt tokens: BPE tokenizers average 3–5 characters per token, so
    one token per two characters leaves room for odd text (code, numbers, non-English)."""
    return sum(len(m["content"]) // 2 + 8 for m in messages)


@dataclass
class Reservation:
    amount: float


class Budget:
    def __init__(self, max_cost_usd: float, model: str, price_factor: float = 1.0) -> None:
        price = model_price(model)
        if price is None:
            raise PriceUnknown(
                f"--max-cost needs a price for model {model!r}: add it with --prices FILE "
                '({"' + model + '": [input, output]} in USD per million tokens)'
            )
        self.max_cost_usd = max_cost_usd
        self.input_price, self.output_price = (p * price_factor / 1_000_000 for p in price)
        self.spent = 0.0
        self.reserved = 0.0

    def worst_case(self, messages: list[dict[str, str]], max_tokens: int) -> float:
        """The most one call can cost: its prompt counted generously, plus all of max_tokens."""
        return worst_case_input_tokens(messages) * self.input_price + max_tokens * self.output_price

    def reserve(self, messages: list[dict[str, str]], max_tokens: int) -> Reservation:
        worst = self.worst_case(messages, max_tokens)
        refusal = self.refusal(worst)
        if refusal is not None:
            raise BudgetExhausted(refusal)
        self.reserved += worst
        return Reservation(worst)

    async def hold(self, messages: list[dict[str, str]], max_tokens: int) -> Reservation:
        """``reserve`` as the runner calls it (a shared budget answers from another process)."""
        return self.reserve(messages, max_tokens)

    def refusal(self, worst: float) -> str | None:
        """Why a call that may cost ``worst`` does not fit (None: it fits)."""
        if self.spent + self.reserved + worst <= self.max_cost_usd:
            return None
        return (
            f"the next call could cost ${worst:.4f}; ${self.spent:.4f} spent and "
            f"${self.reserved:.4f} in flight of the ${self.max_cost_usd:g} budget"
        )

    def settle(self, reservation: Reservation, cost: float | None) -> None:
        """Replace a reservation with what the call cost (None or 0: it failed, nothing billed)."""
        self.reserved -= reservation.amount
        self.spent += cost or 0.0


@dataclass
class Estimate:
    """What a run would do: calls, tokens and cost, and what the figures rest on."""

    tasks_in_source: int
    tasks_to_do: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    basis: str  # "history": averages of finished tasks in the log; "templates": rough bound
    basis_tasks: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def estimate_from_history(warehouse: Any, recipe: str) -> tuple[int, float, float, float]:
    """Per-task averages (calls, input, output tokens) over the recipe's finished tasks that
    were answered by the network (tasks replayed from the cache would understate them)."""
    row = warehouse.select_one("estimate_history", recipe=recipe)
    return (
        row["tasks"],
        row["calls"] or 0.0,
        row["input_tokens"] or 0.0,
        row["output_tokens"] or 0.0,
    )


def estimate_from_templates(recipe: Any, tasks: list[Any]) -> tuple[float, float, float]:
    """Without history: every stage once per task, its template plus the source record as the
    prompt, and its max_tokens as the answer: an upper bound on output, rough on input."""
    calls = float(len(recipe.stages))
    if not tasks or not calls:
        return calls, 0.0, 0.0
    record_tokens = sum(estimate_tokens(canonical_json(task.record)) for task in tasks) / len(tasks)
    input_tokens = sum(
        estimate_tokens(stage.template.system + stage.template.user) + record_tokens
        for stage in recipe.stages
    )
    output_tokens = float(sum(stage.max_tokens for stage in recipe.stages))
    return calls, input_tokens, output_tokens


def estimate_run(
    warehouse: Any,
    recipe: Any,
    model: str,
    tasks_in_source: int,
    todo: list[Any],
    price_factor: float = 1.0,
) -> Estimate:
    basis_tasks, calls, input_tokens, output_tokens = estimate_from_history(warehouse, recipe.name)
    basis = "history"
    if basis_tasks == 0:
        calls, input_tokens, output_tokens = estimate_from_templates(recipe, todo)
        basis = "templates"
    n = len(todo)
    total_in, total_out = round(input_tokens * n), round(output_tokens * n)
    price = model_price(model)
    cost = None
    if price is not None:
        cost = round((total_in * price[0] + total_out * price[1]) * price_factor / 1e6, 6)
    return Estimate(
        tasks_in_source=tasks_in_source,
        tasks_to_do=n,
        calls=round(calls * n),
        input_tokens=total_in,
        output_tokens=total_out,
        cost_usd=cost,
        basis=basis,
        basis_tasks=basis_tasks,
    )
