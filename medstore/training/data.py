"""The conversations to train on: an export folder in any format (JSONL, Parquet, a `datasets`
folder) or a single .jsonl file, read by split, checked, and fingerprinted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medstore.training.config import TrainError
from medstore.warehouse.hashing import canonical_json, content_hash

SPLITS = ("train", "validation", "test")


@dataclass
class TrainingData:
    """The conversations of an export (or any `datasets` / JSONL folder) by split."""

    source: str
    format: str
    splits: dict[str, list[list[dict[str, str]]]]
    manifest: dict[str, Any] | None = None
    manifest_path: str | None = None
    manifest_hash: str | None = None

    @property
    def fingerprint(self) -> str:
        return content_hash(canonical_json(self.splits))

    @property
    def recipe(self) -> str | None:
        """The recipe the export came from, when its manifest says."""
        return (self.manifest or {}).get("recipe", {}).get("name")


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".jsonl":
            return "jsonl-file"
        raise TrainError(f"{path}: expected an export folder or a .jsonl file")
    manifest = path / "manifest.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text(encoding="utf-8"))["format"]
        except (ValueError, KeyError) as exc:
            raise TrainError(f"{manifest}: not a medstore export manifest") from exc
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "arrow"
    if (path / "train.jsonl").is_file():
        return "jsonl"
    if (path / "train.parquet").is_file():
        return "parquet"
    raise TrainError(
        f"{path}: no export found (expected manifest.json, a datasets folder, train.jsonl or "
        "train.parquet); make one with `python cli.py export`"
    )


def no_messages_column(path: Path) -> TrainError:
    return TrainError(
        f"{path}: the data has no `messages` column; export a recipe with a chat form "
        "(system / user / assistant messages)"
    )


def read_jsonl_messages(path: Path, fmt: str) -> dict[str, list[Any]]:
    files = (
        {"train": path}
        if fmt == "jsonl-file"
        else {split: path / f"{split}.jsonl" for split in SPLITS}
    )
    splits: dict[str, list[Any]] = {}
    for split, file in files.items():
        if not file.is_file():
            continue
        rows = []
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainError(f"{file}: line {number} is not JSON: {exc.msg}") from exc
            if "messages" not in row:
                raise no_messages_column(path)
            rows.append(row["messages"])
        splits[split] = rows
    return splits


def read_parquet_messages(path: Path, name: str = "{split}.parquet") -> dict[str, list[Any]]:
    import pyarrow.parquet as pq

    splits = {}
    for split in SPLITS:
        file = path / name.format(split=split)
        if file.is_file():
            if "messages" not in pq.read_schema(file).names:
                raise no_messages_column(path)
            splits[split] = pq.read_table(file, columns=["messages"]).column(0).to_pylist()
    return splits


def read_arrow_messages(path: Path) -> dict[str, list[Any]]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(path))
    parts = {"train": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    if any("messages" not in part.column_names for part in parts.values()):
        raise no_messages_column(path)
    return {name: part["messages"] for name, part in parts.items()}


def read_messages(path: Path, fmt: str) -> dict[str, list[Any]]:
    """The ``messages`` column of every split; a missing column is a one-line error."""
    if fmt in ("jsonl", "jsonl-file"):
        return read_jsonl_messages(path, fmt)
    if fmt == "parquet":
        return read_parquet_messages(path)
    if fmt == "hf-hub-ready":  # the Hub's layout: data/<split>-00000-of-00001.parquet
        return read_parquet_messages(path, "data/{split}-00000-of-00001.parquet")
    if fmt == "arrow":
        return read_arrow_messages(path)
    raise TrainError(f"{path}: unknown export format {fmt!r}")


def check_conversation(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise TrainError(f"{where}: `messages` is not a list of chat turns")
    for turn in messages:
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn):
            raise TrainError(f"{where}: a chat turn lacks `role` or `content`")
    if not any(turn["role"] == "assistant" for turn in messages):
        raise TrainError(f"{where}: no assistant turn to learn from")
    return [{"role": turn["role"], "content": turn["content"] or ""} for turn in messages]


def load_training_data(data_dir: str | Path) -> TrainingData:
    path = Path(data_dir)
    if not path.exists():
        raise TrainError(f"{path}: no such export folder")
    fmt = detect_format(path)
    raw = read_messages(path, fmt)
    splits = {
        split: [
            check_conversation(messages, f"{path} [{split} row {index}]")
            for index, messages in enumerate(rows)
        ]
        for split, rows in raw.items()
    }
    if not splits.get("train"):
        raise TrainError(f"{path}: the dataset is empty (no training rows)")
    data = TrainingData(source=str(path.resolve()), format=fmt, splits=splits)
    manifest = path / "manifest.json" if path.is_dir() else None
    if manifest is not None and manifest.is_file():
        text = manifest.read_text(encoding="utf-8")
        data.manifest = json.loads(text)
        data.manifest_path = str(manifest.resolve())
        data.manifest_hash = content_hash(text)
    return data
