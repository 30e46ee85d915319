"""Content gates: the checks every recipe's outputs pass besides their schema and own rules.

A gate is a pure function of a stage's parsed output (a pydantic model or the text) and the
stage's variables (the source task and options); it returns ``GateFailure`` errors, each a
string ``"<field>: <gate>: <reason>"`` (what a repair prompt quotes) that also carries its gate
and field, so the validation verdict event records them (``gates``) and ``report`` counts them.

Gates: ``blank``, ``placeholder``, ``degenerate`` (every string field), ``empty_list`` and
``repeated_items`` (lists), ``turn_count`` and ``alternation`` (dialogues, where the prompt
asks), ``icd_mismatch`` (a code whose official title does not match its diagnosis) and
``vitals`` (a vital sign outside a plausible format or range). A recipe declares which apply to
a stage with ``GateSpec`` and adds ``content_gates(spec)`` to the stage's validators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from medstore.checks.degenerate import (
    SHORT,
    checked_text_problem,
    short_text_problem,
    shorten,
    text_problem,
)
from medstore.checks.vitals import vital_problem

GATES = (
    "blank",
    "placeholder",
    "degenerate",
    "empty_list",
    "repeated_items",
    "turn_count",
    "alternation",
    "icd_mismatch",
    "vitals",
)
GATE_VERSION = "1"


class GateFailure(str):
    """One failed gate: the error text, with the gate and the field it names."""

    gate: str
    field: str

    def __new__(cls, gate: str, field: str, reason: str) -> GateFailure:
        failure = super().__new__(cls, f"{field}: {gate}: {reason}")
        failure.gate = gate
        failure.field = field
        return failure

    def record(self) -> dict[str, str]:
        return {"gate": self.gate, "field": self.field, "error": str(self)}


@dataclass(frozen=True)
class TurnRule:
    """What a prompt asks of a dialogue: its list field, bounds, and strict alternation."""

    field: str = "turns"
    min_turns: int | None = None
    max_turns: int | None = None
    alternate: tuple[str, ...] = ()  # e.g. ("doctor", "patient"): these two, in turn
    first: str | None = None  # the speaker of the first turn


@dataclass(frozen=True)
class GateSpec:
    """Which gates apply to one stage's output, beyond the text gates on every string.

    ``required_lists``: list fields that must hold at least one item (dotted paths without
    positions, e.g. ``risk_assessment.factors``); ``optional_text``: string fields that may be
    blank (e.g. ``error_sentence`` on a CORRECT verdict); ``unique_by``: for a list of objects,
    the item fields that must differ between items; ``vitals``: the object holding vital signs;
    ``icd``: (list field, diagnosis field, code field); ``list_lines``: a text output that is a
    markdown list, whose items are checked one by one.
    """

    required_lists: frozenset[str] = frozenset()
    optional_text: frozenset[str] = frozenset()
    unique_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    turns: TurnRule | None = None
    vitals: str | None = None
    icd: tuple[str, str, str] | None = None
    list_lines: bool = False


def content_gates(spec: GateSpec) -> Any:
    """The stage validator that runs every gate ``spec`` names (and the text gates)."""

    def gates(output: Any, variables: dict[str, Any]) -> list[str]:
        return check_gates(output, spec)

    gates.__name__ = "content_gates"
    return gates


def check_gates(output: Any, spec: GateSpec) -> list[GateFailure]:
    """Every gate failure of one parsed output (a model, a plain JSON value, or text)."""
    value = output.model_dump() if isinstance(output, BaseModel) else output
    if isinstance(value, str):
        return text_output_failures(value, spec)
    failures = value_failures(value, "", spec)
    if spec.turns is not None:
        failures += turn_failures(value, spec.turns)
    if spec.vitals is not None:
        failures += vitals_failures(value.get(spec.vitals) or {}, spec.vitals)
    if spec.icd is not None:
        failures += icd_failures(value, *spec.icd)
    return failures


def text_output_failures(text: str, spec: GateSpec) -> list[GateFailure]:
    problem = text_problem(text)
    if problem is not None:
        return [GateFailure(problem[0], "output", problem[1])]
    if not spec.list_lines:
        return []
    from medstore.checks.structure import parse_list

    failures = []
    for _, item in parse_list(text).flat:
        found = text_problem(item.text) if item.text else None  # empty items: the structure's
        if found is not None:
            failures.append(GateFailure(found[0], f"line {item.line}", found[1]))
    return failures


def value_failures(value: Any, path: str, spec: GateSpec) -> list[GateFailure]:
    """Text gates on every string, list gates on every list, walking a JSON value."""
    failures: list[GateFailure] = []
    if isinstance(value, str):
        string_failure(value, path, spec, failures)
    elif isinstance(value, dict):
        walk_dict(value, path, spec, failures)
    elif isinstance(value, list):
        walk_list(value, path, spec, failures)
    return failures


# One list filled by plain recursion (nested generators cost a frame per level per item), and a
# string's field path is only formatted when the string fails a gate: most values are strings.
def walk_dict(value: dict, path: str, spec: GateSpec, failures: list[GateFailure]) -> None:
    for key, item in value.items():
        if isinstance(item, str):
            # text_problem, inlined: a call less per string
            problem = short_text_problem(item) if len(item) <= SHORT else checked_text_problem(item)
            if problem is not None:
                string_failure(item, f"{path}.{key}" if path else key, spec, failures, problem)
        elif isinstance(item, dict):
            walk_dict(item, f"{path}.{key}" if path else key, spec, failures)
        elif isinstance(item, list):
            walk_list(item, f"{path}.{key}" if path else key, spec, failures)


def walk_list(items: list, path: str, spec: GateSpec, failures: list[GateFailure]) -> None:
    list_failures(items, path, spec, failures)
    for index, item in enumerate(items):
        if isinstance(item, str):
            problem = short_text_problem(item) if len(item) <= SHORT else checked_text_problem(item)
            if problem is not None:
                string_failure(item, f"{path}.{index}", spec, failures, problem)
        elif isinstance(item, dict):
            walk_dict(item, f"{path}.{index}", spec, failures)
        elif isinstance(item, list):
            walk_list(item, f"{path}.{index}", spec, failures)


def string_failure(
    text: str,
    path: str,
    spec: GateSpec,
    failures: list[GateFailure],
    problem: tuple[str, str] | None = None,
) -> None:
    """Record the gate ``text`` fails, unless it is blank where the field may be blank."""
    problem = problem or text_problem(text)
    if problem is None or (not text.strip() and plain_path(path) in spec.optional_text):
        return
    failures.append(GateFailure(problem[0], path, problem[1]))


@cache
def plain_path(path: str) -> str:
    """A field path without list positions: ``turns.3.text`` → ``turns.text``."""
    return ".".join(part for part in path.split(".") if not part.isdigit())


def list_failures(items: list[Any], path: str, spec: GateSpec, failures: list[GateFailure]) -> None:
    """``empty_list`` where an item is required; ``repeated_items`` among strings, or among the
    ``unique_by`` fields of a list of objects."""
    if not items:
        if plain_path(path) in spec.required_lists:
            failures.append(GateFailure("empty_list", path, "is empty; it needs at least one item"))
        return
    if all(isinstance(item, str) for item in items):
        repeated_strings(items, path, None, failures)
        return
    for key in spec.unique_by.get(plain_path(path), ()):
        texts = [item.get(key) if isinstance(item, dict) else None for item in items]
        repeated_strings(texts, path, key, failures)


def repeated_strings(
    texts: list[Any], path: str, key: str | None, failures: list[GateFailure]
) -> None:
    if len(texts) < 2:
        return
    seen: dict[str, int] = {}
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            continue
        norm = " ".join(text.lower().split())
        if norm in seen:
            where = f"{path}.{index}" + (f".{key}" if key else "")
            failures.append(
                GateFailure(
                    "repeated_items",
                    where,
                    f"{shorten(text)!r} repeats item {seen[norm]}; each item must be different",
                )
            )
        else:
            seen[norm] = index


def turn_failures(value: dict[str, Any], rule: TurnRule) -> list[GateFailure]:
    turns = value.get(rule.field) or []
    failures = []
    count = len(turns)
    if rule.min_turns is not None and count < rule.min_turns:
        failures.append(
            GateFailure(
                "turn_count",
                rule.field,
                f"{count} turns; the prompt asks for at least {rule.min_turns}",
            )
        )
    if rule.max_turns is not None and count > rule.max_turns:
        failures.append(
            GateFailure(
                "turn_count",
                rule.field,
                f"{count} turns; the prompt asks for at most {rule.max_turns}",
            )
        )
    failures += repeated_turns(turns, rule.field)
    speakers = [turn.get("speaker") for turn in turns if isinstance(turn, dict)]
    if rule.first and speakers and speakers[0] != rule.first:
        failures.append(
            GateFailure(
                "alternation",
                f"{rule.field}.0.speaker",
                f"the {speakers[0]} speaks first; the {rule.first} must start",
            )
        )
    if rule.alternate:
        for index in range(1, len(speakers)):
            if speakers[index] == speakers[index - 1]:
                failures.append(
                    GateFailure(
                        "alternation",
                        f"{rule.field}.{index}.speaker",
                        f"the {speakers[index]} speaks twice in a row; the "
                        f"{' and '.join(rule.alternate)} must take turns",
                    )
                )
                break
    return failures


def repeated_turns(turns: list[Any], path: str, min_words: int = 4) -> list[GateFailure]:
    """A turn of ``min_words`` or more that repeats an earlier one word for word (short turns
    such as "Yes." may repeat)."""
    seen: dict[str, int] = {}
    for index, turn in enumerate(turns):
        text = turn.get("text") if isinstance(turn, dict) else None
        if not isinstance(text, str):
            continue
        words = text.lower().split()  # one split: the word count and the normal form
        if len(words) < min_words:
            continue
        norm = " ".join(words)
        if norm in seen:
            return [
                GateFailure(
                    "repeated_items",
                    f"{path}.{index}.text",
                    f"{shorten(text)!r} repeats turn {seen[norm]}; each turn must move on",
                )
            ]
        seen[norm] = index
    return []


def vitals_failures(vitals: dict[str, Any], path: str) -> list[GateFailure]:
    failures = []
    for name, value in vitals.items():
        problem = vital_problem(name, value if isinstance(value, str) else str(value))
        if problem is not None:
            failures.append(GateFailure("vitals", f"{path}.{name}", problem))
    return failures


def icd_failures(value: dict[str, Any], list_field: str, name: str, code: str) -> list[GateFailure]:
    # Imported here: rapidfuzz and the ICD matcher are a tenth of a run's start-up, and only
    # the recipes with coded diagnoses use them.
    from medstore.checks.icd_match import icd_mismatch

    failures = []
    answers: dict[tuple[str, str], str | None] = {}  # a pair repeated in one output: once
    for index, item in enumerate(value.get(list_field) or []):
        diagnosis, icd = item.get(name), item.get(code)
        if not isinstance(diagnosis, str) or not isinstance(icd, str):
            continue
        if (diagnosis, icd) not in answers:
            answers[diagnosis, icd] = icd_mismatch(diagnosis, icd)
        problem = answers[diagnosis, icd]
        if problem is not None:
            failures.append(GateFailure("icd_mismatch", f"{list_field}.{index}.{code}", problem))
    return failures


def gate_records(errors: Sequence[str]) -> list[dict[str, str]]:
    """The gate failures among a check's errors, as the verdict event records them."""
    return [error.record() for error in errors if isinstance(error, GateFailure)]
