"""The content gates that a JSON schema can say, so a grammar-constrained teacher (the embedded
model's xgrammar) cannot write the junk shapes at all.

Every free-text string gets ``CONTENT_PATTERN`` (at least one letter: no ``""``, ``"]]"``,
``"}"``, ``"..."``); recipes add their own bounds on the fields (``minItems``/``maxItems`` for a
dialogue's turns, a pattern for each vital sign) with pydantic's ``json_schema_extra``, which
changes the schema sent, not what pydantic validates: the gates (``medstore.checks.gates``) do
that, naming the gate and field in the verdict. What a schema cannot say (placeholder words,
repeated items, loops, a code that does not match its diagnosis) stays with the gates alone:
xgrammar 0.2 ignores ``uniqueItems``, and ignores ``minLength`` next to a ``pattern``.
"""

from __future__ import annotations

import copy
from typing import Any

CONTENT_PATTERN = "^.*[A-Za-z].*$"
# Schema keywords that already pin a string's form: those strings are left alone.
PINNED = ("enum", "const", "pattern", "format")

VITAL_PATTERNS = {
    "heart_rate": r"^[1-9][0-9]{1,2}( ?(/min|bpm))?$",
    "blood_pressure": r"^[1-9][0-9]{1,2}/[1-9][0-9]{1,2}( ?mm ?Hg)?$",
    "respiratory_rate": r"^[1-9][0-9]?( ?/min)?$",
    "temperature": r"^[1-9][0-9]{1,2}\.[0-9] ?[CF]$",
    "oxygen_saturation": r"^([5-9][0-9]|100) ?%$",
}


def with_content_patterns(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in which every string without a pinned form needs a letter."""
    constrained = copy.deepcopy(schema)
    add_patterns(constrained)
    return constrained


def add_patterns(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            add_patterns(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "string" and not any(key in node for key in PINNED):
        node["pattern"] = CONTENT_PATTERN
        # xgrammar ignores (and warns about) a length next to a pattern; pydantic still checks it.
        node.pop("minLength", None)
    for key, value in node.items():
        if key not in ("enum", "const", "default", "examples"):
            add_patterns(value)


def vital_sign(name: str) -> dict[str, Any]:
    """``json_schema_extra`` of a vital-sign field: the form the grammar lets through."""
    return {"pattern": VITAL_PATTERNS[name]}
