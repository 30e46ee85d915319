"""Held-out only: a trained model is never scored on what it was trained on.

The model's ``training_manifest.json`` names the export it learned from. Two checks, both against
the rows of that export's train split:

- by group: an eval prompt whose group key (a MEDEC note, a scenario, a consultation, a MIMIC
  subject) is a group the model trained on, read from the export manifest's rows;
- by text: an eval prompt whose source text (the note, the question) appears in a training
  conversation's user turn, read from the training data itself (this also covers a model trained
  on a bare .jsonl file, which has no export manifest).

An overlap is an error naming the first examples, unless ``--allow-overlap``; a model whose
training data can no longer be read (the export replaced or removed) cannot be checked, which is
an error too unless ``--allow-overlap``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.training.eval_tasks import EvalError, Example
from medstore.warehouse.hashing import content_hash

MIN_TEXT = 40  # shorter texts (a word, a blank) are not evidence of overlap


@dataclass
class HeldOut:
    checked: list[str] = field(default_factory=list)  # "groups", "texts"
    overlap: list[str] = field(default_factory=list)  # keys of the overlapping examples
    allowed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "overlap": len(self.overlap), "allowed": self.allowed}


def training_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / "training_manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def trained_groups(data: dict[str, Any]) -> set[str] | None:
    """The group keys of the export's train split, if its manifest is the one trained on."""
    manifest_path = data.get("export_manifest")
    if not manifest_path or not Path(manifest_path).is_file():
        return None
    text = Path(manifest_path).read_text(encoding="utf-8")
    if data.get("export_manifest_hash") and content_hash(text) != data["export_manifest_hash"]:
        return None  # the export was replaced since: its rows are not the ones trained on
    rows = json.loads(text).get("rows", [])
    groups = {row["group"] for row in rows if row.get("split") == "train" and row.get("group")}
    return groups or None


def trained_texts(data: dict[str, Any]) -> str | None:
    """Every user turn of the training rows, whitespace-collapsed, joined for searching."""
    from medstore.training.config import TrainError
    from medstore.training.data import load_training_data

    source = data.get("dir")
    if not source or not Path(source).exists():
        return None
    try:
        loaded = load_training_data(source)
    except TrainError:
        return None
    if data.get("fingerprint") and loaded.fingerprint != data["fingerprint"]:
        return None  # changed since training
    turns = [
        collapse(turn["content"])
        for messages in loaded.splits.get("train", [])
        for turn in messages
        if turn["role"] == "user"
    ]
    return "\0".join(turns)


def collapse(text: str) -> str:
    return " ".join(text.split())


def check_held_out(model_dir: Path | None, examples: list[Example], allow_overlap: bool) -> HeldOut:
    """The held-out verdict for one trained model; raises EvalError on an overlap or when the
    training data cannot be checked, unless overlap is allowed."""
    result = HeldOut(allowed=allow_overlap)
    manifest = training_manifest(model_dir) if model_dir else None
    if manifest is None:
        return result  # not trained by medstore: nothing to hold out from
    data = manifest.get("data") or {}
    groups = trained_groups(data)
    texts = trained_texts(data)
    if groups is not None:
        result.checked.append("groups")
    if texts is not None:
        result.checked.append("texts")
    for example in examples:
        text = collapse(example.text)
        in_groups = groups is not None and example.group in groups
        in_texts = texts is not None and len(text) >= MIN_TEXT and text in texts
        if in_groups or in_texts:
            result.overlap.append(example.key or example.group or text[:40])
    if allow_overlap:
        return result
    if not result.checked:
        raise EvalError(
            f"{model_dir}: its training data ({data.get('dir')}) is gone or changed, so "
            "held-out cannot be checked; pass --allow-overlap to score it anyway"
        )
    if result.overlap:
        raise EvalError(
            f"{model_dir} was trained on {len(result.overlap)} of the {len(examples)} eval "
            f"examples (e.g. {', '.join(result.overlap[:3])}); evaluate on held-out data (the "
            "test split) or pass --allow-overlap"
        )
    return result
