"""Consultation records (Description, Patient, Doctor, Status) from a file, a folder written by
``datasets.save_to_disk``, or the Hugging Face hub.

Every reader yields ``Consultation`` rows with the record as the source holds it (null cells stay
``None``, extra columns are kept); deciding which rows are usable is the recipe's business.
A source that cannot be read at all is one ``SourceError`` line naming the file, line and field.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medstore.sources.base import SourceError

COLUMNS = ("Description", "Patient", "Doctor", "Status")
HUB_PREFIX = "hf:"
FORMATS = "CSV, JSONL, Parquet, a datasets.save_to_disk folder or hf:owner/name[:split]"


@dataclass(frozen=True)
class Consultation:
    index: int  # 0-based row number in the source
    where: str  # for messages: "file.jsonl line 3", "folder row 12"
    record: dict[str, Any]


def read_consultations(source: str | Path) -> Iterator[Consultation]:
    """Every row of a consultations source, by its form: ``hf:owner/name[:split]``, a folder
    (``save_to_disk``), or a ``.csv``, ``.jsonl``/``.ndjson``/``.json`` or ``.parquet`` file."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        yield from read_hub(text[len(HUB_PREFIX) :])
        return
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{path}: no such consultations file or folder")
    if path.is_dir():
        yield from read_saved_dataset(path)
        return
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        yield from read_jsonl(path)
    elif suffix == ".json":
        yield from read_json_array(path)
    elif suffix == ".parquet":
        yield from read_parquet(path)
    else:
        raise SourceError(f"{path}: unknown consultations format {suffix!r}; expected {FORMATS}")


def check_columns(where: str, columns: list[str] | tuple[str, ...]) -> None:
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        found = ", ".join(columns) or "none"
        raise SourceError(
            f"{where}: no {', '.join(repr(m) for m in missing)} column "
            f"(expected {', '.join(COLUMNS)}; found {found})"
        )


def read_csv(path: Path) -> Iterator[Consultation]:
    """CSV with a header row; an empty cell is read as null, as pandas and datasets do."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # doctors' answers can be long
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            check_columns(str(path), reader.fieldnames or [])
            for index, row in enumerate(reader):
                if None in row:
                    raise SourceError(
                        f"{path}: line {reader.line_num}: more fields than the header has"
                    )
                record = {key: (value if value != "" else None) for key, value in row.items()}
                yield Consultation(index, f"{path.name} line {reader.line_num}", record)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a UTF-8 text file (byte {exc.start})") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable CSV file: {exc}") from exc


def read_jsonl(path: Path) -> Iterator[Consultation]:
    index = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path.name} line {number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceError(
                        f"{path}: line {number}: not valid JSON: {exc.msg} at column {exc.colno}"
                    ) from exc
                yield Consultation(index, where, checked_record(f"{path}: line {number}", record))
                index += 1
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a UTF-8 text file (byte {exc.start})") from exc


def read_json_array(path: Path) -> Iterator[Consultation]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: not a valid JSON file: {exc}") from exc
    if not isinstance(records, list):
        raise SourceError(f"{path}: expected a JSON array of consultation objects")
    for index, record in enumerate(records):
        where = f"{path}: item [{index}]"
        yield Consultation(index, f"{path.name} item {index}", checked_record(where, record))


def checked_record(where: str, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(record).__name__}")
    check_columns(where, list(record))
    return record


def read_parquet(path: Path) -> Iterator[Consultation]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"{path}: not a readable Parquet file: {first_line(exc)}") from exc
    check_columns(str(path), parquet.schema_arrow.names)
    index = 0
    for batch in parquet.iter_batches():
        for record in batch.to_pylist():
            yield Consultation(index, f"{path.name} row {index}", record)
            index += 1


def read_saved_dataset(path: Path) -> Iterator[Consultation]:
    """A folder written by ``Dataset.save_to_disk`` (or a DatasetDict's, taking ``train`` or its
    only split)."""
    if not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        raise SourceError(
            f"{path}: a folder, but not one written by datasets.save_to_disk "
            "(no dataset_info.json or dataset_dict.json)"
        )
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types for a damaged folder
        raise SourceError(f"{path}: cannot load the saved dataset: {first_line(exc)}") from exc
    yield from dataset_rows(str(path), pick_split(str(path), loaded, None))


def read_hub(spec: str) -> Iterator[Consultation]:
    """``owner/name[:split]`` from the Hugging Face hub, when the user is online."""
    name, _, split = spec.partition(":")
    if not name or name.count("/") != 1:
        raise SourceError(f"hf:{spec}: expected hf:owner/name or hf:owner/name:split")
    if hub_offline():
        raise SourceError(
            f"hf:{spec}: the Hugging Face hub is offline here (HF_HUB_OFFLINE or "
            "HF_DATASETS_OFFLINE is set); load it once online and pass the save_to_disk folder"
        )
    import datasets

    try:
        loaded = datasets.load_dataset(name, split=split or None)
    except Exception as exc:  # network, auth and missing-split errors all end the same way
        raise SourceError(f"hf:{spec}: cannot load from the hub: {first_line(exc)}") from exc
    yield from dataset_rows(f"hf:{spec}", pick_split(f"hf:{spec}", loaded, split or None))


def hub_offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def pick_split(where: str, loaded: Any, split: str | None) -> Any:
    """The Dataset itself, or one split of a DatasetDict: the asked one, ``train``, or the only."""
    if not hasattr(loaded, "keys"):
        return loaded
    splits = list(loaded.keys())
    chosen = split or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
    if chosen not in splits:
        raise SourceError(f"{where}: choose a split with :NAME, one of {', '.join(splits)}")
    return loaded[chosen]


def dataset_rows(where: str, dataset: Any) -> Iterator[Consultation]:
    check_columns(where, list(dataset.column_names))
    label = where.rstrip("/").rsplit("/", 1)[-1]
    for index, record in enumerate(dataset):
        yield Consultation(index, f"{label} row {index}", dict(record))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
