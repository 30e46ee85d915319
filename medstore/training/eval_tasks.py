"""The tasks ``eval`` scores a model on: the prompts of each (with the truth to score against)
and the scorer that turns a model's answers into metrics.

- ``medec-detect``: MEDEC notes (default: the test split in shared), answered in any format
  medstore trains, written as a MEDIQA-CORR run file and scored as the shared task scores it
  (``medstore.training.mediqa_corr``): error flag accuracy, error sentence detection accuracy,
  ROUGE-1/2/L composites.
- ``structure``: share of answers to patients' questions that meet the hierarchical rules
  (``medstore.checks.structure``: a nested list, at least 3 levels, at most 5 points per level, …).
- ``json-validity``: share of consult answers whose JSON parses, and validates against the consult
  expert schema; the prompts come from a consult export (``--data``).

Prompts taken from an export come from its held-out rows only: the test split, else validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.training.chat import to_think_tags
from medstore.training.medec_answers import answer_part

TASKS = ("medec-detect", "structure", "json-validity")
HELD_OUT_SPLITS = ("test", "validation")
MEDEC_TEST_FILE = "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv"
MEDEC_PROMPTS = ("critic", "safe", "paper")
MEDEC_METRICS = (
    "error_flag_accuracy", "error_sentence_accuracy", "rouge1_f", "rouge2_f", "rougeL_f"
)  # fmt: skip
# The MEDEC paper's way of asking, in our words: numbered sentences in, CORRECT or the id of the
# erroneous sentence and its correction out.
PAPER_SYSTEM_PROMPT = (
    "You are a physician reviewing a clinical text, one sentence per line, each line starting "
    "with its sentence id and a pipe. The text is either correct or holds one medical error "
    "(diagnosis, management, treatment, pharmacotherapy or causal organism). If it is correct, "
    "answer CORRECT. Otherwise answer with the id of the sentence holding the error, a space, "
    "and the corrected sentence."
)
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class EvalError(Exception):
    """The evaluation cannot run (no data, unknown model folder): one line."""


@dataclass
class Example:
    messages: list[dict[str, str]]  # the prompt: system and user turns
    truth: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # the text id or row this prompt comes from
    group: str | None = None  # its group key, as exports record it (for the held-out check)
    text: str = ""  # the source text (a note, a question), for the held-out check


# Data --------------------------------------------------------------------------------------------
def medec_reference(data: str | None) -> Any:
    """The MEDEC CSV as the MEDIQA-CORR reference (default: the test split in shared)."""
    from medstore.sources.medec import default_medec_path
    from medstore.training.mediqa_corr import CorrError, read_reference

    path = Path(data) if data else default_medec_path().parent / MEDEC_TEST_FILE
    if not path.exists():
        raise EvalError(f"{path}: no MEDEC file (pass --data PATH or set MEDSTORE_MEDEC_DIR)")
    try:
        return read_reference(path)
    except CorrError as exc:
        raise EvalError(str(exc)) from exc


def medec_prompt(text: Any, prompt: str) -> list[dict[str, str]]:
    """The note as each recipe's student is asked about it, or as the MEDEC paper asks."""
    from medstore.recipes.medec_cot import CRITIC_SYSTEM_PROMPT
    from medstore.recipes.medec_safe import CHAT_SYSTEM_PROMPT

    if prompt == "safe":
        user = f"{text.text}\n\nIs this clinical note CORRECT or INCORRECT?"
        return [_turn("system", CHAT_SYSTEM_PROMPT), _turn("user", user)]
    if prompt == "paper":
        numbered = "\n".join(f"{index} | {sentence}" for index, sentence in text.sentences.items())
        return [_turn("system", PAPER_SYSTEM_PROMPT), _turn("user", numbered)]
    user = f"Review this clinical note for a medical error.\n\n{text.text}"
    return [_turn("system", to_think_tags(CRITIC_SYSTEM_PROMPT)), _turn("user", user)]


def medec_examples(
    data: str | None, limit: int, prompt: str = "critic"
) -> tuple[str, list[Example]]:
    """The first ``limit`` texts of the file in file order, flagged and clean alike."""
    if prompt not in MEDEC_PROMPTS:
        raise EvalError(f"unknown prompt {prompt!r}: expected one of {', '.join(MEDEC_PROMPTS)}")
    reference = medec_reference(data)
    examples = [
        Example(
            medec_prompt(text, prompt),
            {"reference": text},
            key=text.text_id,
            group=f"medec:{text.text_id}",
            text=text.text,
        )
        for text in list(reference.texts.values())[:limit]
    ]
    return reference.path, examples


def structure_examples(
    data: str | None, limit: int, split: str | None = None
) -> tuple[str, list[Example]]:
    """Patients' questions from a consultations file (default: the shipped sample) or from an
    export's held-out rows."""
    from medstore.recipes.hierarchical import CHAT_SYSTEM_PROMPT, consultation_id
    from medstore.resources import resource_dir
    from medstore.sources.consultations import read_consultations

    if data and is_export(Path(data)):
        return data, export_prompts(Path(data), limit, split)
    path = data or str(resource_dir("data") / "consultations_sample.jsonl")
    examples = []
    for item in read_consultations(path):
        record = json.loads(json.dumps(item.record, default=str))
        question = "\n\n".join(
            str(record.get(column) or "").strip()
            for column in ("Description", "Patient")
            if str(record.get(column) or "").strip()
        )
        if question:
            messages = [_turn("system", CHAT_SYSTEM_PROMPT), _turn("user", question)]
            source_id = consultation_id(record)
            examples.append(
                Example(messages, key=source_id, group=f"hierarchical:{source_id}", text=question)
            )
        if len(examples) == limit:
            break
    return path, examples


def json_examples(
    data: str | None, limit: int, split: str | None = None
) -> tuple[str, list[Example]]:
    if not data or not is_export(Path(data)):
        raise EvalError(
            "json-validity needs --data: a consult export folder "
            "(python cli.py export --recipe consult --out exports/consult)"
        )
    return data, export_prompts(Path(data), limit, split)


def is_export(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.json").is_file()


def held_out_split(path: Path, splits: dict[str, list[Any]], split: str | None) -> str:
    """The split to evaluate on: the one asked for, else test when it has rows, else validation.
    Never train: a model is not scored on what it may have learned from."""
    if split is not None and split not in HELD_OUT_SPLITS:
        raise EvalError(f"--split {split}: eval uses held-out rows only (test or validation)")
    chosen = split or next((name for name in HELD_OUT_SPLITS if splits.get(name)), "validation")
    if not splits.get(chosen):
        raise EvalError(
            f"{path}: no {chosen} rows to evaluate on; eval uses held-out rows only (export "
            "with e.g. --splits train=0.8,validation=0.1,test=0.1)"
        )
    return chosen


def export_prompts(path: Path, limit: int, split: str | None = None) -> list[Example]:
    """Every turn before the last assistant turn, from the export's held-out split, each with
    its group key from the manifest."""
    from medstore.training.config import TrainError
    from medstore.training.data import load_training_data

    try:
        data = load_training_data(path)
    except TrainError as exc:
        raise EvalError(str(exc)) from exc
    chosen = held_out_split(path, data.splits, split)
    manifest_rows = [row for row in (data.manifest or {}).get("rows", []) if row["split"] == chosen]
    conversations = data.splits[chosen]
    if len(manifest_rows) != len(conversations):
        manifest_rows = [{}] * len(conversations)  # an export without per-row lineage
    examples = []
    for messages, row in list(zip(conversations, manifest_rows, strict=True))[:limit]:
        last = max(i for i, turn in enumerate(messages) if turn["role"] == "assistant")
        user = "\n".join(turn["content"] for turn in messages[:last] if turn["role"] == "user")
        examples.append(
            Example(
                messages[:last],
                {"answer": messages[last]["content"]},
                key=row.get("sample_id", ""),
                group=row.get("group"),
                text=user,
            )
        )
    return examples


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


# Scoring -----------------------------------------------------------------------------------------
@dataclass
class Scored:
    """A model's figures on a task; for medec-detect also its MEDIQA-CORR run file."""

    metrics: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)
    run_file: str | None = None
    problems: list[str] = field(default_factory=list)


def score_medec(outputs: list[str], examples: list[Example]) -> Scored:
    """The answers as a MEDIQA-CORR run file, scored as the official script scores it."""
    from medstore.training.medec_answers import parse_answer, run_line
    from medstore.training.mediqa_corr import Reference, parse_run_lines, run_file_text, score_run

    lines = []
    for output, example in zip(outputs, examples, strict=True):
        truth = example.truth["reference"]
        line = run_line(truth.text_id, parse_answer(output), truth.sentences)
        if line is not None:
            lines.append(line)
    text = run_file_text(lines)
    texts = {example.truth["reference"].text_id: example.truth["reference"] for example in examples}
    scored = score_run(Reference("the eval's texts", texts), parse_run_lines(text, "run file"))
    metrics = {name: scored.metrics[name] for name in MEDEC_METRICS}
    metrics["unparsed"] = (len(examples) - len(lines)) / len(examples)
    return Scored(metrics, scored.counts, text, scored.problems)


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


def task_examples(
    task: str, data: str | None, limit: int, *, prompt: str = "critic", split: str | None = None
) -> tuple[str, list[Example]]:
    """The prompts of a task and where they came from."""
    if task == "medec-detect":
        return medec_examples(data, limit, prompt)
    if task == "structure":
        return structure_examples(data, limit, split)
    return json_examples(data, limit, split)


TASK_SCORE: dict[str, Callable[[list[str], list[Example]], Scored]] = {
    "medec-detect": score_medec,
    "structure": lambda outputs, examples: Scored(score_structure(outputs, examples)),
    "json-validity": lambda outputs, examples: Scored(score_json(outputs, examples)),
}
