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

from medstore.training.export_features import arrow_table
from medstore.warehouse.hashing import HASH_TAG, uuid7

FORMATS = ("jsonl", "arrow", "parquet", "hf-hub-ready")
HUB_DATA = "data"  # hf-hub-ready: data/<split>-00000-of-00001.parquet, the Hub's own layout
MANIFEST = "manifest.json"
CARD = "README.md"


def jsonl_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(row).decode() + "\n" for row in rows]


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


def hub_file(split: str) -> str:
    return f"{HUB_DATA}/{split}-00000-of-00001.parquet"


def write_hub(folder: Path, table: Any, by_split: dict[str, list[int]]) -> None:
    """Parquet in the Hub's layout, one file per split that has rows (the card's `configs`
    name them; an empty split would be a split `load_dataset` cannot build)."""
    import pyarrow.parquet as pq

    (folder / HUB_DATA).mkdir()
    for split, indices in by_split.items():
        if indices:
            pq.write_table(take(table, indices), folder / hub_file(split))


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
    specs: dict[str, Any],
    rows_hash: str,
    splits: list[str],
    recipe: str,
) -> list[str]:
    """Write one data file (or folder) per split into ``folder``, an empty one for a split
    without rows (hf-hub-ready: none), with the declared column types (``specs``, see
    export_features); returns the columns stored as JSON text."""
    by_split = {
        split: [i for i, row in enumerate(rows) if row["split"] == split] for split in splits
    }
    if fmt == "jsonl":
        write_jsonl(folder, rows, by_split)
        return []
    table, json_columns = arrow_table(rows, specs, recipe)
    if fmt == "parquet":
        write_parquet(folder, table, by_split)
    elif fmt == "hf-hub-ready":
        write_hub(folder, table, by_split)
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


def data_file_names(fmt: str, splits: list[str], counts: dict[str, int]) -> dict[str, str]:
    if fmt == "hf-hub-ready":
        return {split: hub_file(split) for split in splits if counts.get(split)}
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
