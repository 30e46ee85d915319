"""Prices per million tokens (USD, input/output), so each response event can carry its cost.

Override or extend with a JSON file named by MEDSTORE_PRICES: {"model": [input, output], ...}.
"""

from __future__ import annotations

import json
import os
from functools import cache

BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
}


@cache
def price_table() -> dict[str, tuple[float, float]]:
    table = dict(BUILTIN_PRICES)
    path = os.environ.get("MEDSTORE_PRICES")
    if path:
        with open(path, encoding="utf-8") as handle:
            table.update(
                {model: (float(p[0]), float(p[1])) for model, p in json.load(handle).items()}
            )
    return table


def cost_usd(model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """The cost of one call, or None when the model's price is unknown (local models are free)."""
    price = price_table().get(model)
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 8)
