"""Structured output: how a JSON stage asks a server for schema-constrained output.

Servers that all speak "the OpenAI protocol" disagree on this one field, so each way of asking
is a named *dialect* (``--structured-output``):

- ``json_schema``: ``response_format: {"type": "json_schema", "json_schema": {"schema": ...}}``
  (OpenAI, vLLM, llama.cpp's C++ server, Ollama's /v1);
- ``json_object_schema``: ``response_format: {"type": "json_object", "schema": ...}``
  (llama-cpp-python's server, which refuses ``json_schema``; llama.cpp's C++ server too);
- ``guided_json``: vLLM's own ``guided_json`` field (vLLM before 0.12, which removed it);
- ``format``: Ollama's native ``format`` field holding the schema;
- ``json_object``: JSON mode only (DeepSeek): the schema goes in the prompt;
- ``none``: no structured-output field: the schema goes in the prompt.

Whatever was sent, medstore validates the output against the stage's pydantic model after.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, get_args

from medstore.llm.base import PermanentError
from medstore.warehouse.hashing import canonical_json

StructuredMode = Literal[
    "auto", "json_schema", "json_object_schema", "json_object", "guided_json", "format", "none"
]

DIALECTS: tuple[str, ...] = get_args(StructuredMode)

# What each backend can send, and what `auto` tries, best first.
OPENAI_MODES = ("json_schema", "json_object_schema", "guided_json", "json_object", "none")
OPENAI_AUTO = ("json_schema", "json_object_schema", "json_object", "none")
OLLAMA_MODES = ("format", "json_object", "none")
OLLAMA_AUTO = ("format", "json_object", "none")

# Dialects that send the schema to the server as a constraint; the others put it in the prompt.
CONSTRAINED = frozenset({"json_schema", "json_object_schema", "guided_json", "format"})

# The request field a server names when it refuses a dialect.
PARAMETER = {
    "json_schema": "response_format",
    "json_object_schema": "response_format",
    "json_object": "response_format",
    "guided_json": "guided_json",
    "format": "format",
}
# A refusal of a parameter is a capability answer, whatever the status: llama-cpp-python
# answers an unknown response_format type with a 500, llama.cpp with 400 or 500, DeepSeek with
# 400 or 422, llama.cpp's "not supported" is a 501.
REFUSAL_STATUSES = frozenset({400, 422, 500, 501})

SCHEMA_IN_PROMPT = (
    "Reply with one JSON object that matches this JSON schema, and nothing else:\n{schema}"
)

# The probe: a schema the prompt contradicts, so only a server that enforces the schema
# answers {"medstore_probe": 7}; a model left free follows the prompt instead.
PROBE_SCHEMA: dict[str, Any] = {
    "title": "MedstoreProbe",
    "type": "object",
    "properties": {"medstore_probe": {"type": "integer", "enum": [7]}},
    "required": ["medstore_probe"],
    "additionalProperties": False,
}
PROBE_MESSAGES = [
    {"role": "system", "content": "Reply with one JSON object and nothing else."},
    {"role": "user", "content": 'Reply with exactly this JSON object: {"answer": "no"}'},
]
PROBE_MAX_TOKENS = 24


class StructuredOutputRefused(PermanentError):
    """The server refused the structured-output dialect: a capability answer, never retried."""

    def __init__(self, mode: str, message: str, *, status: int | None = None) -> None:
        super().__init__("structured_output_refused", message, status=status)
        self.mode = mode


def is_constrained(mode: str | None) -> bool:
    return mode in CONSTRAINED


def is_refusal(mode: str | None, status: int, body: str) -> bool:
    """True when an error answer is the server refusing ``mode``: a 400/422/500/501 whose body
    names the request field the dialect uses."""
    parameter = PARAMETER.get(mode or "")
    if parameter is None or status not in REFUSAL_STATUSES:
        return False
    return re.search(rf"\b{parameter}\b", body, re.IGNORECASE) is not None


def openai_fields(mode: str | None, schema: dict[str, Any] | None) -> dict[str, Any]:
    """The body fields of an OpenAI-compatible request for ``mode`` (``schema``: what is sent)."""
    if mode == "json_schema" and schema is not None:
        wrapper = {"name": schema_name(schema), "schema": schema, "strict": False}
        return {"response_format": {"type": "json_schema", "json_schema": wrapper}}
    if mode == "json_object_schema" and schema is not None:
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == "guided_json" and schema is not None:
        return {"guided_json": schema}
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}


def ollama_fields(mode: str | None, schema: dict[str, Any] | None) -> dict[str, Any]:
    """The body fields of an Ollama /api/chat or /api/generate request for ``mode``."""
    if mode == "format" and schema is not None:
        return {"format": schema}
    if mode == "json_object":
        return {"format": "json"}
    return {}


def schema_name(schema: dict[str, Any]) -> str:
    """OpenAI wants ``^[a-zA-Z0-9_-]{1,64}$`` as the schema's name; a pydantic title fits."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "output"))
    return name[:64] or "output"


def with_schema_in_prompt(
    messages: list[dict[str, str]], schema: dict[str, Any]
) -> list[dict[str, str]]:
    """The messages with the schema appended to the system prompt (one is added if missing)."""
    note = SCHEMA_IN_PROMPT.format(schema=canonical_json(schema))
    if messages and messages[0]["role"] == "system":
        first = {"role": "system", "content": f"{messages[0]['content']}\n\n{note}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def probe_enforced(text: str) -> bool:
    """Did the probe's answer follow the schema rather than the prompt?"""
    try:
        return json.loads(text.strip()) == {"medstore_probe": 7}
    except json.JSONDecodeError:
        return False
