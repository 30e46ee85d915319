"""Plain-text tables for the terminal: aligned columns, numbers right-aligned with thousands
separators, blanks as "—", long cells cut to a width. Never a Python repr."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def cell(value: Any, width: int | None = None) -> str:
    """How one value reads in a table."""
    if value is None or value == "" or value == {} or value == []:
        text = "—"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:,.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = " ".join(str(value).split())
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def render_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    headers: Sequence[str] | None = None,
    widths: dict[str, int] | None = None,
) -> str:
    """Rows (dicts) as an aligned table with a header line; an empty table says so."""
    if not rows:
        return "(none)"
    widths = widths or {}
    header = list(headers or columns)
    body = [[cell(row.get(column), widths.get(column)) for column in columns] for row in rows]
    numeric = [
        all(isinstance(row.get(column), int | float) or row.get(column) is None for row in rows)
        for column in columns
    ]
    sizes = [max(len(header[i]), *(len(line[i]) for line in body)) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(
            value.rjust(sizes[i]) if numeric[i] else value.ljust(sizes[i])
            for i, value in enumerate(values)
        ).rstrip()

    rule = "  ".join("-" * size for size in sizes)
    return "\n".join([line(header), rule, *(line(values) for values in body)])


def render_pairs(pairs: dict[str, Any], indent: str = "") -> str:
    """A dict of scalars as "name  value" lines, names aligned."""
    if not pairs:
        return f"{indent}(none)"
    size = max(len(str(key)) for key in pairs)
    return "\n".join(
        f"{indent}{str(key).ljust(size)}  {cell(value)}" for key, value in pairs.items()
    )


def is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def render_figures(value: Any, indent: int = 0) -> str:
    """Nested figures (a recipe's report) as headed blocks: scalars as aligned name/value lines,
    lists of records as tables, empty ones as "(none)"."""
    pad = "  " * indent
    if isinstance(value, list):
        if value and all(
            isinstance(item, dict) and all(map(is_scalar, item.values())) for item in value
        ):
            columns = list(dict.fromkeys(key for item in value for key in item))
            table = render_table(value, columns)
            return "\n".join(pad + line for line in table.splitlines())
        return pad + (", ".join(cell(item) for item in value) if value else "(none)")
    if not isinstance(value, dict):
        return pad + cell(value)
    if not value:
        return pad + "(none)"
    lines: list[str] = []
    scalars = {key: item for key, item in value.items() if is_scalar(item)}
    if scalars:
        lines.append(render_pairs(scalars, pad))
    for key, item in value.items():
        if key in scalars:
            continue
        lines.append(f"{pad}{key}:")
        lines.append(render_figures(item, indent + 1))
    return "\n".join(lines)
