"""Score a model (a trained adapter or model folder, a hub id, or ``bundled``) on one task, next to
its base model, and record each score as an ``eval_result`` event.

Tasks:
- ``medec-detect``: the critic's job on MEDEC notes (default: the test split in shared): error flag
  accuracy, and for notes with an error, how often the named error sentence is the annotated one.
- ``structure``: share of answers to patients' questions that meet the hierarchical rules
  (``medstore.checks.structure``: a nested list, at least 3 levels, at most 5 points per level, …).
- ``json-validity``: share of consult answers whose JSON parses, and validates against the consult
  expert schema; the prompts come from a consult export (``--data``).

Generation is greedy, so a score is a function of model, data and settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.recipes.base import SourceError
from medstore.training.chat import to_think_tags
from medstore.warehouse.events import Envelope, EvalResult
from medstore.warehouse.hashing import uuid7
from medstore.warehouse.store import Warehouse

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


@dataclass
class Score:
    role: str  # base | trained
    model: str
    metrics: dict[str, float]
    event_id: str = ""


@dataclass
class EvalReport:
    eval_id: str
    task: str
    data: str
    examples: int
    scores: list[Score]


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


# Models ------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """What ``--model`` names: the model to score, and the base it was trained from, if known."""

    spec: str
    base_spec: str | None
    adapter_dir: Path | None
    training_run_id: str | None


def resolve_candidate(spec: str) -> Candidate:
    folder = Path(spec)
    if not folder.is_dir():
        return Candidate(spec, None, None, None)
    manifest: dict[str, Any] = {}
    if (folder / "training_manifest.json").is_file():
        manifest = json.loads((folder / "training_manifest.json").read_text(encoding="utf-8"))
    base_spec = (manifest.get("base_model") or {}).get("spec")
    run_id = manifest.get("training_run_id")
    if (folder / "adapter_config.json").is_file():
        if base_spec is None:
            adapter = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
            base_spec = adapter.get("base_model_name_or_path")
        if not base_spec:
            raise EvalError(f"{folder}: an adapter whose base model is not recorded")
        return Candidate(str(folder.resolve()), base_spec, folder, run_id)
    if not (folder / "config.json").is_file():
        raise EvalError(f"{folder}: neither a trained adapter nor a model folder")
    return Candidate(str(folder.resolve()), base_spec, None, run_id)


def generate(
    model: Any, tokenizer: Any, examples: list[Example], max_new_tokens: int, batch_size: int
) -> list[str]:
    """Greedy answers, batched with left padding."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(e.messages, tokenize=False, add_generation_prompt=True)
            for e in batch
        ]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return outputs


def evaluate(
    warehouse: Warehouse,
    model_spec: str,
    task: str,
    *,
    data: str | None = None,
    limit: int = 50,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    with_base: bool = True,
) -> EvalReport:
    """Score ``model_spec`` (and its base model, when known) on ``task``; one event per model."""
    from medstore.training.config import TrainError
    from medstore.training.models import load_base_model

    if task not in TASKS:
        raise EvalError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    candidate = resolve_candidate(model_spec)
    try:
        source, examples = TASK_DATA[task](data, limit)
    except SourceError as exc:
        raise EvalError(str(exc)) from exc
    if not examples:
        raise EvalError(f"{source}: no examples for task {task}")
    score = TASK_SCORE[task]
    runs: list[tuple[str, str, Callable[[], list[str]]]] = []
    try:
        if candidate.adapter_dir is not None:
            from peft import PeftModel

            base = load_base_model(candidate.base_spec)
            model = PeftModel.from_pretrained(base.model, str(candidate.adapter_dir)).eval()

            def run_base() -> list[str]:
                with model.disable_adapter():
                    return generate(model, base.tokenizer, examples, max_new_tokens, batch_size)

            if with_base:
                runs.append(("base", candidate.base_spec, run_base))
            runs.append(
                (
                    "trained",
                    candidate.spec,
                    lambda: generate(model, base.tokenizer, examples, max_new_tokens, batch_size),
                )
            )
        else:
            if with_base and candidate.base_spec:
                base = load_base_model(candidate.base_spec)
                runs.append(
                    ("base", candidate.base_spec, bound(base, examples, max_new_tokens, batch_size))
                )
            loaded = load_base_model(candidate.spec)
            role = "trained" if candidate.training_run_id else "base"
            runs.append((role, candidate.spec, bound(loaded, examples, max_new_tokens, batch_size)))
    except TrainError as exc:
        raise EvalError(str(exc)) from exc

    eval_id = uuid7()
    config = {"limit": limit, "max_new_tokens": max_new_tokens, "decoding": "greedy"}
    scores = []
    for role, name, run in runs:
        metrics = score(run(), examples)
        event = EvalResult(
            eval_id=eval_id,
            task=task,
            model=name,
            role=role,
            base_model=candidate.base_spec,
            training_run_id=candidate.training_run_id if role == "trained" else None,
            examples=len(examples),
            metrics=metrics,
            data=source,
            config=config,
        )
        [record] = warehouse.append([(event, Envelope())])
        scores.append(Score(role, name, metrics, record.event_id))
    return EvalReport(eval_id, task, source, len(examples), scores)


def bound(base: Any, examples: list[Example], max_new_tokens: int, batch_size: int):
    model = base.model.eval()
    return lambda: generate(model, base.tokenizer, examples, max_new_tokens, batch_size)
