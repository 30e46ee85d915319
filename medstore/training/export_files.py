"""An export's data files (JSONL, Parquet, a `datasets` folder), their hash, and the staging
folder they are written in before it replaces the export folder in one rename.

Every writer is deterministic: the same rows give the same bytes (no timestamps, and the
`datasets` fingerprint comes from the content)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from medstore.warehouse.hashing import HASH_TAG, canonical_json, uuid7

FORMATS = ("jsonl", "arrow", "parquet")
MANIFEST = "manifest.json"
CARD = "README.md"


def jsonl_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(row).decode() + "\n" for row in rows]


def arrow_table(rows: list[dict[str, Any]], columns: list[str]) -> tuple[Any, list[str]]:
    """A pyarrow table with native types; a column whose values Arrow cannot give one type
    (mixed shapes) is stored as JSON text and named in the returned list."""
    import pyarrow as pa

    arrays = []
    json_columns = []
    for name in columns:
        values = [row.get(name) for row in rows]
        if name == "messages":
            message_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
            arrays.append(pa.array(values, type=message_type))
            continue
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else canonical_json(v) for v in values]))
            json_columns.append(name)
    return pa.Table.from_arrays(arrays, names=columns), json_columns


def write_jsonl(folder: Path, rows: list[dict[str, Any]], by_split: dict[str, list[int]]) -> None:
    lines = jsonl_lines(rows)
    for split, indices in by_split.items():
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(lines[i] for i in indices)


def take(table: Any, indices: list[int]) -> Any:
    """The rows at ``indices``; typed, so that an empty split is an empty table, not an error
    (an empty Python list has no Arrow type)."""
    import pyarrow as pa

    return table.take(pa.array(indices, type=pa.int64()))


def write_parquet(folder: Path, table: Any, by_split: dict[str, list[int]]) -> None:
    import pyarrow.parquet as pq

    for split, indices in by_split.items():
        pq.write_table(take(table, indices), folder / f"{split}.parquet")


def write_arrow(folder: Path, table: Any, by_split: dict[str, list[int]], rows_hash: str) -> None:
    from datasets import Dataset, DatasetDict
    from datasets.utils import logging as datasets_logging

    # A fingerprint from the content, not a random one, keeps state.json identical on re-export.
    fingerprint = rows_hash.removeprefix(HASH_TAG)[:16]
    dataset = DatasetDict(
        {
            split: Dataset(take(table, indices), split=split, fingerprint=f"{fingerprint}-{split}")
            for split, indices in by_split.items()
        }
    )
    bars_were_on = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        # One shard per split even when a split is empty: datasets writes no file for an empty
        # split otherwise, and load_from_disk then fails on it.
        dataset.save_to_disk(str(folder), num_shards=dict.fromkeys(dataset, 1))
    finally:
        if bars_were_on:
            datasets_logging.enable_progress_bar()


def write_files(
    folder: Path,
    fmt: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    rows_hash: str,
    splits: list[str],
) -> list[str]:
    """Write one data file (or folder) per split into ``folder``, an empty one for a split
    without rows; returns the columns stored as JSON text."""
    by_split = {
        split: [i for i, row in enumerate(rows) if row["split"] == split] for split in splits
    }
    if fmt == "jsonl":
        write_jsonl(folder, rows, by_split)
        return []
    table, json_columns = arrow_table(rows, columns)
    if fmt == "parquet":
        write_parquet(folder, table, by_split)
    else:
        write_arrow(folder, table, by_split, rows_hash)
    return json_columns


def data_files_hash(folder: Path) -> str:
    """One hash over every data file's relative path and bytes (manifest and card excluded)."""
    digest = hashlib.blake2b(digest_size=32)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in (MANIFEST, CARD):
            continue
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(hashlib.blake2b(path.read_bytes(), digest_size=32).digest())
    return HASH_TAG + digest.hexdigest()


def data_file_names(fmt: str, splits: list[str]) -> dict[str, str]:
    if fmt == "jsonl":
        return {split: f"{split}.jsonl" for split in splits}
    if fmt == "parquet":
        return {split: f"{split}.parquet" for split in splits}
    return {split: f"{split}/" for split in splits}


def move_into_place(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        retired = out_dir.parent / f".{out_dir.name}.old-{uuid7()}"
        os.rename(out_dir, retired)
        os.rename(staging, out_dir)
        shutil.rmtree(retired)
    else:
        os.rename(staging, out_dir)


@contextmanager
def staging_folder(out_dir: Path) -> Iterator[Path]:
    """A fresh folder next to ``out_dir`` to write the export into. It replaces ``out_dir`` when
    the block finishes, and is removed if the block fails: no half-written export is left."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.writing-{uuid7()}"
    staging.mkdir()
    try:
        yield staging
        move_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
