"""The `consult` recipe's input: scenario seeds (``data/scenarios.json``), each a pydantic
``Scenario``, read and checked as a whole before any task starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medstore.checks.parsing import validation_errors
from medstore.sources.base import SourceError


class Scenario(BaseModel):
    """One seed of data/scenarios.json."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    specialty: str
    age: int = Field(ge=0, le=120)
    sex: Literal["male", "female"]
    symptoms: list[str] = Field(min_length=1)
    risk_factors: list[str] = []
    background: str = ""


def load_scenarios(path: Path) -> list[Scenario]:
    """Read and check a scenarios file; any problem is one SourceError naming file and field."""
    if not path.exists():
        raise SourceError(f"{path}: no such scenarios file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(raw, list):
        raise SourceError(f"{path}: expected a JSON array of scenario objects")
    scenarios = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        try:
            scenario = Scenario.model_validate(item)
        except ValidationError as exc:
            raise SourceError(f"{path}: scenario [{index}]: {validation_errors(exc)[0]}") from exc
        if scenario.id in seen:
            raise SourceError(f"{path}: scenario [{index}]: id {scenario.id!r} is used twice")
        seen.add(scenario.id)
        scenarios.append(scenario)
    return scenarios
