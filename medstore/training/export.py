"""Export a recipe's dataset view as JSONL, a `datasets` Arrow folder or Parquet, with lineage.

Every row carries the recipe's own fields plus a chat ``messages`` column ready for SFT, and
``manifest.json`` names, for every row, the sample and the ids of the events behind it.

Determinism: rows are sorted by task key, the train/validation split is a hash of the task key,
volatile fields (timestamps) are left out and no file holds the time of the export. So the data
files are byte-identical whenever the exported rows are unchanged, and ``manifest.json`` and
``README.md`` are too whenever the rows and the events behind them are unchanged (the export id
is derived from that content). Each export still appends its own ``export_written`` event.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from medstore import __version__
from medstore.recipes.base import Recipe
from medstore.training.dataset_card import render_card
from medstore.warehouse.events import Envelope, ExportWritten
from medstore.warehouse.hashing import HASH_TAG, canonical_json, content_hash, short_hash, uuid7
from medstore.warehouse.store import Warehouse

FORMATS = ("jsonl", "arrow", "parquet")
SPLITS = ("train", "validation")
MANIFEST = "manifest.json"
CARD = "README.md"
# Columns the exporter adds; a recipe field of the same name is kept as ``sample_<name>``.
EXPORT_COLUMNS = ("sample_id", "task_key", "split", "label", "origin", "messages")
# Reasoning tags teachers and older pipelines use; SFT targets (Qwen3, DeepSeek-R1) expect <think>.
REASONING_TAGS = ("reasoning", "thinking", "thought", "thoughts", "chain_of_thought", "cot")
OPEN_TAG = re.compile(rf"<\s*({'|'.join(REASONING_TAGS)})\s*>", re.IGNORECASE)
CLOSE_TAG = re.compile(rf"<\s*/\s*({'|'.join(REASONING_TAGS)})\s*>", re.IGNORECASE)
VERSION_SUFFIX = re.compile(r":v[^:]*$")


class ExportError(Exception):
    """The export cannot be made (no samples, unknown view, occupied folder): one line."""


@dataclass
class ExportResult:
    export_id: str
    out_dir: Path
    format: str
    counts: dict[str, int]
    manifest: dict[str, Any]
    manifest_hash: str
    event_id: str


def to_think_tags(text: str) -> str:
    """``<reasoning>…</reasoning>`` (and <thinking>, <thought>, …) become ``<think>…</think>``."""
    return CLOSE_TAG.sub("</think>", OPEN_TAG.sub("<think>", text))


def split_of(task_key: str, ratio: float) -> str:
    """train or validation, from a hash of the task key without its recipe version, so the same
    task lands in the same split in every export, also after a recipe version bump."""
    stable_key = VERSION_SUFFIX.sub("", task_key)
    digest = hashlib.blake2b(stable_key.encode("utf-8"), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return "train" if fraction < ratio else "validation"


def chat_messages(recipe: Recipe, sample: dict[str, Any]) -> tuple[list[dict] | None, bool]:
    """The recipe's chat form with reasoning tags converted, and whether the answer had any;
    (None, False) if the recipe has no chat form."""
    try:
        messages = recipe.to_messages(sample)
    except NotImplementedError:
        return None, False
    converted = False
    result = []
    for message in messages:
        content = message["content"]
        # The system prompt names the tags too ("reason inside <reasoning> tags"): it must ask
        # for the tags the student is trained to write.
        if message["role"] in ("system", "assistant"):
            new_content = to_think_tags(content)
            if message["role"] == "assistant":
                converted = converted or new_content != content
            content = new_content
        result.append({"role": message["role"], "content": content})
    return result, converted


def relation_exists(warehouse: Warehouse, name: str) -> bool:
    rows = warehouse.query(
        "SELECT 1 FROM sqlite_master WHERE type IN ('view', 'table') AND name = ?", (name,)
    )
    return bool(rows)


def read_view(warehouse: Warehouse, view: str, recipe: str) -> list[dict[str, Any]]:
    """The rows of a dataset view for one recipe. View names come from recipe classes, never
    from user input; they are still checked against the schema before use."""
    if not relation_exists(warehouse, view):
        raise ExportError(f"dataset view {view!r} does not exist in {warehouse.path}")
    columns = {row["name"] for row in warehouse.query(f'PRAGMA table_info("{view}")')}
    missing = {"sample_id", "task_key", "sample_json"} - columns
    if missing:
        raise ExportError(f"dataset view {view!r} lacks column(s) {', '.join(sorted(missing))}")
    where = "WHERE recipe = ?" if "recipe" in columns else ""
    return warehouse.query(f'SELECT * FROM "{view}" {where}', (recipe,) if where else ())


def build_rows(
    warehouse: Warehouse, recipe: Recipe, *, include_fallbacks: bool, split_ratio: float
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The export rows, sorted by task key, and counters (think conversions, messages)."""
    sources = [("accepted", recipe.dataset_view)]
    if include_fallbacks and recipe.fallback_view:
        sources.append(("fallback", recipe.fallback_view))
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for origin, view in sources:
        for view_row in read_view(warehouse, view, recipe.name):
            chosen.setdefault(view_row["task_key"], (origin, view_row))  # accepted rows win
    stats: Counter = Counter()
    rows = []
    for task_key in sorted(chosen):
        origin, view_row = chosen[task_key]
        sample = orjson.loads(view_row["sample_json"])
        messages, converted = chat_messages(recipe, sample)
        stats["think_tags_converted"] += converted
        row: dict[str, Any] = {
            "sample_id": view_row["sample_id"],
            "task_key": task_key,
            "split": split_of(task_key, split_ratio),
            "label": view_row.get("label"),
            "origin": origin,
        }
        if messages is not None:
            row["messages"] = messages
            stats["with_messages"] += 1
        for name in sorted(sample):
            if name in recipe.volatile_fields or name == "sample_id":
                continue
            row[f"sample_{name}" if name in EXPORT_COLUMNS else name] = sample[name]
        rows.append(row)
    return rows, dict(stats)


def task_lineage(
    warehouse: Warehouse, recipe: str, task_keys: set[str]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Event ids per task (the rows the provenance view gives a sample, keyed by task so that
    fallback rows without an acceptance resolve too), and what the teachers were."""
    events_by_task: dict[str, list[str]] = defaultdict(list)
    models: Counter = Counter()
    backends: Counter = Counter()
    templates: dict[str, set[str]] = defaultdict(set)
    cursor = warehouse.conn.execute(
        """
        SELECT task_key, event_id, event_type,
               CASE WHEN event_type = 'llm_request' THEN payload_json END AS request_json
        FROM events
        WHERE recipe = ? AND task_key IS NOT NULL
        ORDER BY task_key, id
        """,
        (recipe,),
    )
    for task_key, event_id, event_type, request_json in cursor:
        if task_key not in task_keys:
            continue
        events_by_task[task_key].append(event_id)
        if event_type == "llm_request":
            request = orjson.loads(request_json)
            models[request["model"]] += 1
            backends[request["backend"]] += 1
            if request.get("prompt_template"):
                templates[request["prompt_template"]].add(request.get("prompt_template_hash"))
    teachers = {
        "models": dict(sorted(models.items())),
        "backends": dict(sorted(backends.items())),
        "prompt_templates": {
            name: sorted(h for h in hashes if h) for name, hashes in sorted(templates.items())
        },
    }
    return dict(events_by_task), teachers


# Writers ------------------------------------------------------------------------------------------
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


def write_files(
    folder: Path, fmt: str, rows: list[dict[str, Any]], columns: list[str], rows_hash: str
) -> list[str]:
    """Write the data files into ``folder``; returns the columns stored as JSON text."""
    by_split = {
        split: [i for i, row in enumerate(rows) if row["split"] == split] for split in SPLITS
    }
    if fmt == "jsonl":
        lines = jsonl_lines(rows)
        for split, indices in by_split.items():
            with (folder / f"{split}.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
                handle.writelines(lines[i] for i in indices)
        return []
    table, json_columns = arrow_table(rows, columns)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for split, indices in by_split.items():
            pq.write_table(table.take(indices), folder / f"{split}.parquet")
        return json_columns
    from datasets import Dataset, DatasetDict
    from datasets.utils import logging as datasets_logging

    # A fingerprint from the content, not a random one, keeps state.json identical on re-export.
    fingerprint = rows_hash.removeprefix(HASH_TAG)[:16]
    dataset = DatasetDict(
        {
            split: Dataset(table.take(indices), split=split, fingerprint=f"{fingerprint}-{split}")
            for split, indices in by_split.items()
        }
    )
    bars_were_on = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        dataset.save_to_disk(str(folder))
    finally:
        if bars_were_on:
            datasets_logging.enable_progress_bar()
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


def check_out_dir(out_dir: Path) -> None:
    """Refuse a folder that holds anything but an earlier medstore export (which is replaced)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    manifest = out_dir / MANIFEST
    try:
        earlier = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or "export_id" not in earlier:
        raise ExportError(
            f"{out_dir}: folder is not empty and holds no medstore export; choose another --out"
        )


def move_into_place(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        retired = out_dir.parent / f".{out_dir.name}.old-{uuid7()}"
        os.rename(out_dir, retired)
        os.rename(staging, out_dir)
        shutil.rmtree(retired)
    else:
        os.rename(staging, out_dir)


# The export --------------------------------------------------------------------------------------
def export_dataset(
    warehouse: Warehouse,
    recipe: Recipe,
    fmt: str,
    out_dir: str | Path,
    *,
    include_fallbacks: bool = False,
    split_ratio: float = 0.9,
) -> ExportResult:
    """Write the recipe's dataset to ``out_dir`` (replacing an earlier export there), then record
    an ``export_written`` event. Nothing is written if the dataset is empty."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if not 0 < split_ratio <= 1:
        raise ExportError(f"split ratio {split_ratio} must be in (0, 1]")
    out_dir = Path(out_dir).resolve()
    check_out_dir(out_dir)
    rows, stats = build_rows(
        warehouse, recipe, include_fallbacks=include_fallbacks, split_ratio=split_ratio
    )
    if not rows:
        views = recipe.dataset_view + (
            f" or {recipe.fallback_view}" if include_fallbacks and recipe.fallback_view else ""
        )
        raise ExportError(
            f"no samples of recipe {recipe.name!r} in view {views} of {warehouse.path}: "
            f"run `python cli.py run --recipe {recipe.name}` first"
        )
    lineage, teachers = task_lineage(warehouse, recipe.name, {row["task_key"] for row in rows})
    columns = list(EXPORT_COLUMNS if stats.get("with_messages") else EXPORT_COLUMNS[:-1])
    columns += sorted({name for row in rows for name in row} - set(columns))
    lines = jsonl_lines(rows)
    rows_hash = content_hash("".join(lines))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.writing-{uuid7()}"
    staging.mkdir()
    try:
        json_columns = write_files(staging, fmt, rows, columns, rows_hash)
        data_hash = data_files_hash(staging)
        manifest = build_manifest(
            recipe,
            fmt=fmt,
            rows=rows,
            columns=columns,
            json_columns=json_columns,
            lineage=lineage,
            teachers=teachers,
            stats=stats,
            data_hash=data_hash,
            include_fallbacks=include_fallbacks,
            split_ratio=split_ratio,
        )
        manifest_text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode() + "\n"
        (staging / MANIFEST).write_text(manifest_text, encoding="utf-8")
        (staging / CARD).write_text(render_card(manifest), encoding="utf-8")
        move_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    sample_ids = sorted(row["sample_id"] for row in rows)
    manifest_hash = content_hash(manifest_text)
    event = ExportWritten(
        export_id=manifest["export_id"],
        recipe=recipe.name,
        format=fmt,
        out_dir=str(out_dir),
        view=manifest["view"],
        include_fallbacks=include_fallbacks,
        split_ratio=split_ratio,
        counts=manifest["counts"]["splits"] | {"total": len(rows)},
        manifest_hash=manifest_hash,
        data_hash=data_hash,
        sample_ids_hash=content_hash(canonical_json(sample_ids)),
        sample_ids=canonical_json(sample_ids),
    )
    [record] = warehouse.append([(event, Envelope(recipe=recipe.name))])
    return ExportResult(
        export_id=manifest["export_id"],
        out_dir=out_dir,
        format=fmt,
        counts=event.counts,
        manifest=manifest,
        manifest_hash=manifest_hash,
        event_id=record.event_id,
    )


def build_manifest(
    recipe: Recipe,
    *,
    fmt: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    json_columns: list[str],
    lineage: dict[str, list[str]],
    teachers: dict[str, Any],
    stats: dict[str, int],
    data_hash: str,
    include_fallbacks: bool,
    split_ratio: float,
) -> dict[str, Any]:
    """What the export holds and where every row came from; no timestamps, so it is a function
    of the content and the export id can be derived from it."""
    splits = Counter(row["split"] for row in rows)
    labels_by_split: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        labels_by_split[row["split"]][str(row["label"])] += 1
    view = recipe.dataset_view
    if include_fallbacks and recipe.fallback_view:
        view = f"{view} + {recipe.fallback_view}"
    row_lineage = [
        {
            "sample_id": row["sample_id"],
            "task_key": row["task_key"],
            "split": row["split"],
            "origin": row["origin"],
            "event_ids": lineage.get(row["task_key"], []),
        }
        for row in rows
    ]
    manifest: dict[str, Any] = {
        "export_id": "",
        "medstore_version": __version__,
        "recipe": {
            "name": recipe.name,
            "version": recipe.version,
            "description": recipe.description,
        },
        "format": fmt,
        "files": data_file_names(fmt),
        "view": view,
        "include_fallbacks": include_fallbacks,
        "split": {
            "ratio": split_ratio,
            "rule": "blake2b-64 of the task key without its version suffix, as a fraction of "
            "2^64: below the ratio is train, the rest validation",
        },
        "counts": {
            "total": len(rows),
            "splits": {split: splits.get(split, 0) for split in SPLITS},
            "labels": dict(sorted(Counter(str(row["label"]) for row in rows).items())),
            "labels_by_split": {
                split: dict(sorted(labels_by_split[split].items())) for split in SPLITS
            },
            "origins": dict(sorted(Counter(row["origin"] for row in rows).items())),
            "with_messages": stats.get("with_messages", 0),
            "think_tags_converted": stats.get("think_tags_converted", 0),
        },
        "columns": columns,
        "json_encoded_columns": json_columns,
        "left_out_fields": sorted(recipe.volatile_fields),
        "teachers": teachers,
        "licences": list(recipe.licences),
        "credentialed_source": recipe.credentialed_source,
        "data_hash": data_hash,
        "rows": row_lineage,
    }
    manifest["export_id"] = "x-" + short_hash(canonical_json(manifest))
    return manifest


def data_file_names(fmt: str) -> dict[str, str]:
    if fmt == "jsonl":
        return {split: f"{split}.jsonl" for split in SPLITS}
    if fmt == "parquet":
        return {split: f"{split}.parquet" for split in SPLITS}
    return {split: f"{split}/" for split in SPLITS}
