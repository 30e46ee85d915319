"""Checks shared by recipes: finding JSON in model output, readable validation errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class ParseError(ValueError):
    pass


def extract_json(text: str) -> Any:
    """Parse the JSON value in a model's output: bare, in a code fence, or amid prose.

    Strict JSON only, except that a raw control character (a newline) inside a string is
    read as itself: llama-cpp-python's schema grammar lets them through (its ``char`` rule is
    ``[^"\\]``), so its schema-constrained output would otherwise fail to parse. Anything else
    is a ParseError whose message goes into the repair prompt.
    """
    stripped = text.strip()

    def candidates() -> Iterator[str | None]:  # cheapest first; most outputs are bare JSON
        yield stripped
        yield from (match.strip() for match in FENCE.findall(text))
        yield outermost_json_span(stripped)

    last_error: json.JSONDecodeError | None = None
    for candidate in candidates():
        if not candidate:
            continue
        try:
            return json.loads(candidate, strict=False)
        except json.JSONDecodeError as exc:
            last_error = exc
    if last_error is None:
        raise ParseError("the output is empty; expected a JSON value")
    raise ParseError(
        f"the output is not valid JSON: {last_error.msg} at line {last_error.lineno} "
        f"column {last_error.colno}"
    )


def outermost_json_span(text: str) -> str | None:
    """The text from the first '{' or '[' to its matching closer, respecting strings."""
    start = next((i for i, ch in enumerate(text) if ch in "{["), None)
    if start is None:
        return None
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        ch = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
    return None


def validation_errors(exc: ValidationError) -> list[str]:
    """One line per problem: the field path and what was wrong, as a repair prompt can quote."""
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{location}: {error['msg']}")
    return lines


def validate_model(model: type[BaseModel], value: Any) -> tuple[BaseModel | None, list[str]]:
    try:
        return model.model_validate(value), []
    except ValidationError as exc:
        return None, validation_errors(exc)
