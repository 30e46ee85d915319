"""The rows to train on: an export folder in any format (JSONL, Parquet, a `datasets` folder) or
a single .jsonl file, read by split, checked, and fingerprinted. SFT reads `messages` (or
`prompt`/`completion`), DPO `prompt`/`chosen`/`rejected`, in TRL's text or chat-turn forms."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medstore.training.config import TrainError
from medstore.warehouse.hashing import canonical_json, content_hash

SPLITS = ("train", "validation", "test")
SFT_COLUMNS = ("messages", "prompt", "completion")
DPO_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass
class TrainingData:
    """The conversations of an export (or any `datasets` / JSONL folder) by split."""

    source: str
    format: str
    splits: dict[str, list[Any]]  # conversations, text pairs or preference pairs
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
        f"{path}: the data has no `messages` column (nor `prompt` and `completion`); export a "
        "recipe with a chat form (system / user / assistant messages)"
    )


def no_preference_columns(path: Path) -> TrainError:
    return TrainError(
        f"{path}: --method dpo needs `prompt`, `chosen` and `rejected` columns; export a "
        "recipe's preference pairs (medec-cot)"
    )


def read_jsonl_rows(path: Path, fmt: str) -> dict[str, list[dict[str, Any]]]:
    files = (
        {"train": path}
        if fmt == "jsonl-file"
        else {split: path / f"{split}.jsonl" for split in SPLITS}
    )
    splits: dict[str, list[dict[str, Any]]] = {}
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
            if not isinstance(row, dict):
                raise TrainError(f"{file}: line {number} is not a JSON object")
            rows.append(row)
        splits[split] = rows
    return splits


def read_parquet_rows(
    path: Path, columns: tuple[str, ...], name: str = "{split}.parquet"
) -> dict[str, list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    splits = {}
    for split in SPLITS:
        file = path / name.format(split=split)
        if file.is_file():
            present = [column for column in columns if column in pq.read_schema(file).names]
            splits[split] = pq.read_table(file, columns=present).to_pylist()
    return splits


def read_arrow_rows(path: Path, columns: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(path))
    parts = {"train": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    return {
        name: part.select_columns([c for c in columns if c in part.column_names]).to_list()
        for name, part in parts.items()
    }


def read_rows(path: Path, fmt: str, columns: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """The rows of every split (with at least ``columns`` where the format reads by column)."""
    if fmt in ("jsonl", "jsonl-file"):
        return read_jsonl_rows(path, fmt)
    if fmt == "parquet":
        return read_parquet_rows(path, columns)
    if fmt == "hf-hub-ready":  # the Hub's layout: data/<split>-00000-of-00001.parquet
        return read_parquet_rows(path, columns, "data/{split}-00000-of-00001.parquet")
    if fmt == "arrow":
        return read_arrow_rows(path, columns)
    raise TrainError(f"{path}: unknown export format {fmt!r}")


def sft_row(row: dict[str, Any], path: Path, where: str) -> Any:
    """A chat conversation (``messages``, or a conversational prompt + completion), or a plain
    ``{"prompt", "completion"}`` text pair; the loss is on the answer either way."""
    if row.get("messages") is not None:
        return check_conversation(row["messages"], where)
    prompt, completion = row.get("prompt"), row.get("completion")
    if prompt is None or completion is None:
        raise no_messages_column(path)
    if isinstance(prompt, list) and isinstance(completion, list):
        return check_conversation(prompt + completion, where)
    if isinstance(prompt, str) and isinstance(completion, str) and completion:
        return {"prompt": prompt, "completion": completion}
    raise TrainError(f"{where}: `prompt` and `completion` are not both text or both chat turns")


def dpo_row(row: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """A preference pair as TRL's DPOTrainer takes it: text, or chat turns."""
    if not {"prompt", "chosen", "rejected"} <= set(row):
        raise no_preference_columns(path)
    pair = {key: row[key] for key in ("prompt", "chosen", "rejected")}
    kinds = {type(value) for value in pair.values()}
    if kinds == {list}:
        for key in pair:
            for turn in pair[key]:
                if not isinstance(turn, dict) or not {"role", "content"} <= set(turn):
                    raise TrainError(f"{where}: a `{key}` chat turn lacks `role` or `content`")
    elif kinds != {str} or not pair["chosen"] or not pair["rejected"]:
        raise TrainError(f"{where}: `prompt`, `chosen`, `rejected` are not all text or all turns")
    return pair


def check_conversation(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise TrainError(f"{where}: `messages` is not a list of chat turns")
    for turn in messages:
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn):
            raise TrainError(f"{where}: a chat turn lacks `role` or `content`")
    if not any(turn["role"] == "assistant" for turn in messages):
        raise TrainError(f"{where}: no assistant turn to learn from")
    return [{"role": turn["role"], "content": turn["content"] or ""} for turn in messages]


def load_training_data(data_dir: str | Path, objective: str = "sft") -> TrainingData:
    """The rows to train on by split: conversations (or text pairs) for SFT, preference pairs
    for DPO; any row that does not fit is a one-line error."""
    path = Path(data_dir)
    if not path.exists():
        raise TrainError(f"{path}: no such export folder")
    fmt = detect_format(path)
    columns = DPO_COLUMNS if objective == "dpo" else SFT_COLUMNS
    convert = dpo_row if objective == "dpo" else sft_row
    splits = {
        split: [
            convert(row, path, f"{path} [{split} row {index}]") for index, row in enumerate(rows)
        ]
        for split, rows in read_rows(path, fmt, columns).items()
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
