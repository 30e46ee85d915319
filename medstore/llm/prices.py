"""Prices per million tokens (USD, input/output), so each response event can carry its cost.

Override or extend with a JSON file, named by ``--prices FILE`` or MEDSTORE_PRICES:
``{"model": [input, output], ...}`` or ``{"model": {"input": 0.15, "output": 0.60}, ...}``.
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
BATCH_DISCOUNT = 0.5  # the OpenAI Batch API bills half the synchronous price

_price_files: list[str] = []
_price_tables: list[dict[str, tuple[float, float]]] = []


class PriceFileError(ValueError):
    """A price file that cannot be read, with a one-line reason."""


def read_price_file(path: str) -> dict[str, tuple[float, float]]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise PriceFileError(f"{path}: cannot read prices ({exc})") from exc
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected an object of model -> [input, output] prices")
    table: dict[str, tuple[float, float]] = {}
    for model, price in data.items():
        try:
            pair = (price["input"], price["output"]) if isinstance(price, dict) else price
            input_price, output_price = (float(p) for p in pair)
        except (KeyError, TypeError, ValueError):
            raise PriceFileError(
                f"{path}: model {model!r}: expected [input, output] USD per million tokens"
            ) from None
        if input_price < 0 or output_price < 0:
            raise PriceFileError(f"{path}: model {model!r}: prices cannot be negative")
        table[model] = (input_price, output_price)
    return table


def use_price_file(path: str) -> None:
    """Add a price file on top of the built-in table (and MEDSTORE_PRICES); checked at once."""
    read_price_file(path)
    _price_files.append(path)
    price_table.cache_clear()


def use_prices(table: dict[str, tuple[float, float]]) -> None:
    """Add prices already read (a driver's table, handed to a worker on another machine)."""
    _price_tables.append({model: (float(i), float(o)) for model, (i, o) in table.items()})
    price_table.cache_clear()


@cache
def price_table() -> dict[str, tuple[float, float]]:
    table = dict(BUILTIN_PRICES)
    env_path = os.environ.get("MEDSTORE_PRICES")
    for path in [env_path, *_price_files] if env_path else _price_files:
        table.update(read_price_file(path))
    for extra in _price_tables:
        table.update(extra)
    return table


def model_price(model: str) -> tuple[float, float] | None:
    return price_table().get(model)


def cost_usd(model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """The cost of one call, or None when the model's price is unknown (local models are free)."""
    price = model_price(model)
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return round((input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 8)
