"""The tasks ``eval`` scores a model on: the prompts of each (with the truth to score against)
and the scorer that turns a model's answers into metrics.

- ``medec-detect``: the critic's job on MEDEC notes (default: the test split in shared): error flag
  accuracy, and for notes with an error, how often the named error sentence is the annotated one.
- ``structure``: share of answers to patients' questions that meet the hierarchical rules
  (``medstore.checks.structure``: a nested list, at least 3 levels, at most 5 points per level, …).
- ``json-validity``: share of consult answers whose JSON parses, and validates against the consult
  expert schema; the prompts come from a consult export (``--data``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.training.chat import to_think_tags

TASKS = ("medec-detect", "structure", "json-validity")
MEDEC_TEST_FILE = "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv"
THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
VERDICT = re.compile(r"verdict\s*:?\s*\**\s*(correct|error)", re.IGNORECASE)
BARE_VERDICT = re.compile(r"\b(CORRECT|ERROR)\b")
ERROR_SENTENCE = re.compile(r"error sentence\s*:?\s*(.+)", re.IGNORECASE)
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class EvalError(Exception):
    """The evaluation cannot run (no data, unknown model folder): one line."""


@dataclass
class Example:
    messages: list[dict[str, str]]  # the prompt: system and user turns
    truth: dict[str, Any] = field(default_factory=dict)


# Data --------------------------------------------------------------------------------------------
def medec_examples(data: str | None, limit: int) -> tuple[str, list[Example]]:
    """Flagged notes (ERROR, with the annotated sentence) and clean notes (CORRECT), file order."""
    from medstore.recipes.medec_cot import CRITIC_SYSTEM_PROMPT
    from medstore.sources.medec import MedecNote, MedecPair, default_medec_path, read_medec

    path = Path(data) if data else default_medec_path().parent / MEDEC_TEST_FILE
    if not path.exists():
        raise EvalError(f"{path}: no MEDEC file (pass --data PATH or set MEDSTORE_MEDEC_DIR)")
    system = to_think_tags(CRITIC_SYSTEM_PROMPT)
    examples = []
    for item in read_medec(path):
        if isinstance(item, MedecPair):
            note, truth = item.incorrect_note, {"label": "ERROR", "sentence": item.error_sentence}
        elif isinstance(item, MedecNote):
            note, truth = item.note, {"label": "CORRECT"}
        else:
            continue
        user = f"Review this clinical note for a medical error.\n\n{note}"
        examples.append(Example([_turn("system", system), _turn("user", user)], truth))
        if len(examples) == limit:
            break
    return str(path), examples


def structure_examples(data: str | None, limit: int) -> tuple[str, list[Example]]:
    """Patients' questions from a consultations file (default: the shipped sample) or an export."""
    from medstore.recipes.hierarchical import CHAT_SYSTEM_PROMPT
    from medstore.resources import resource_dir
    from medstore.sources.consultations import read_consultations

    if data and is_export(Path(data)):
        return data, export_prompts(Path(data), limit)
    path = data or str(resource_dir("data") / "consultations_sample.jsonl")
    examples = []
    for item in read_consultations(path):
        record = item.record
        question = "\n\n".join(
            str(record.get(column) or "").strip()
            for column in ("Description", "Patient")
            if str(record.get(column) or "").strip()
        )
        if question:
            messages = [_turn("system", CHAT_SYSTEM_PROMPT), _turn("user", question)]
            examples.append(Example(messages))
        if len(examples) == limit:
            break
    return path, examples


def json_examples(data: str | None, limit: int) -> tuple[str, list[Example]]:
    if not data or not is_export(Path(data)):
        raise EvalError(
            "json-validity needs --data: a consult export folder "
            "(python cli.py export --recipe consult --out exports/consult)"
        )
    return data, export_prompts(Path(data), limit)


def is_export(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.json").is_file()


def export_prompts(path: Path, limit: int) -> list[Example]:
    """Every turn before the last assistant turn, validation rows first, then train rows."""
    from medstore.training.config import TrainError
    from medstore.training.data import load_training_data

    try:
        splits = load_training_data(path).splits
    except TrainError as exc:
        raise EvalError(str(exc)) from exc
    conversations = splits.get("validation", []) + splits.get("train", [])
    examples = []
    for messages in conversations[:limit]:
        last = max(i for i, turn in enumerate(messages) if turn["role"] == "assistant")
        examples.append(Example(messages[:last], {"answer": messages[last]["content"]}))
    return examples


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


# Scoring -----------------------------------------------------------------------------------------
def answer_part(output: str) -> str:
    """What follows the reasoning: the output without its <think> block."""
    return THINK_BLOCK.sub("", to_think_tags(output)).strip()


def normalise(sentence: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", sentence.lower()).split())


def score_medec(outputs: list[str], examples: list[Example]) -> dict[str, float]:
    correct = unparsed = flagged = matched = 0
    for output, example in zip(outputs, examples, strict=True):
        answer = answer_part(output)
        found = VERDICT.search(answer) or BARE_VERDICT.search(answer)
        predicted = found.group(1).upper() if found else None
        unparsed += predicted is None
        correct += predicted == example.truth["label"]
        if example.truth["label"] == "ERROR":
            flagged += 1
            named = ERROR_SENTENCE.search(answer)
            truth = normalise(example.truth["sentence"])
            if predicted == "ERROR" and named and truth and truth in normalise(named.group(1)):
                matched += 1
    total = len(examples)
    return {
        "flag_accuracy": correct / total,
        "error_sentence_match": matched / flagged if flagged else 0.0,
        "unparsed": unparsed / total,
    }


def score_structure(outputs: list[str], examples: list[Example]) -> dict[str, float]:
    from medstore.checks.structure import check_structure

    reports = [check_structure(answer_part(output)) for output in outputs]
    return {
        "structure_ok": sum(report.ok for report in reports) / len(reports),
        "mean_depth": sum(report.depth for report in reports) / len(reports),
    }


def parse_json_answer(output: str) -> Any:
    answer = answer_part(output)
    fenced = FENCE.search(answer)
    if fenced:
        answer = fenced.group(1)
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object")
    return json.loads(answer[start : end + 1])


def score_json(outputs: list[str], examples: list[Example]) -> dict[str, float]:
    from pydantic import ValidationError

    from medstore.recipes.consult import ExpertOutput

    parsed = valid = 0
    for output in outputs:
        try:
            value = parse_json_answer(output)
        except ValueError:
            continue
        parsed += 1
        try:
            ExpertOutput.model_validate(value)
        except ValidationError:
            continue
        valid += 1
    return {"json_parses": parsed / len(outputs), "schema_valid": valid / len(outputs)}


TASK_DATA: dict[str, Callable[[str | None, int], tuple[str, list[Example]]]] = {
    "medec-detect": medec_examples,
    "structure": structure_examples,
    "json-validity": json_examples,
}
TASK_SCORE: dict[str, Callable[[list[str], list[Example]], dict[str, float]]] = {
    "medec-detect": score_medec,
    "structure": score_structure,
    "json-validity": score_json,
}
