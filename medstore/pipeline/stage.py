"""One LLM call of a recipe: its prompt template, parameters, output schema and checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from medstore.pipeline.prompts import PromptTemplate, load_template

# A validator looks at a stage's parsed output (and the stage's variables) and lists problems.
Validator = Callable[[Any, dict[str, Any]], list[str]]


class StageRejected(Exception):
    """A stage output still invalid after every repair: the task is rejected with a reason."""

    def __init__(
        self, reason: str, errors: Sequence[str] = (), fallback: dict | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = list(errors)
        self.fallback = fallback


@dataclass
class Stage:
    """One LLM call: its prompt template, parameters, output schema and checks."""

    name: str
    prompt: str | PromptTemplate  # a template under prompts/ by name, or a plugin's own
    temperature: float
    schema: type[BaseModel] | None = None
    max_tokens: int = 1024
    validators: Sequence[Validator] = field(default_factory=tuple)
    max_repairs: int = 2

    @property
    def template(self) -> PromptTemplate:
        if isinstance(self.prompt, PromptTemplate):
            return self.prompt
        return load_template(self.prompt)

    def json_schema(self) -> dict[str, Any] | None:
        return schema_of(self.schema) if self.schema else None


@cache
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """JSON schema of a pydantic model, built once (it is asked for on every call)."""
    return model.model_json_schema()
