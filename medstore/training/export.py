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
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from medstore.recipes.base import Recipe
from medstore.training.chat import chat_messages
from medstore.training.dataset_card import render_card
from medstore.training.export_files import (
    CARD,
    FORMATS,
    MANIFEST,
    data_files_hash,
    jsonl_lines,
    staging_folder,
    write_files,
)
from medstore.training.export_manifest import build_manifest
from medstore.warehouse import queries
from medstore.warehouse.events import Envelope, ExportWritten
from medstore.warehouse.hashing import canonical_json, content_hash
from medstore.warehouse.store import Warehouse

# Columns the exporter adds; a recipe field of the same name is kept as ``sample_<name>``.
EXPORT_COLUMNS = ("sample_id", "task_key", "split", "label", "origin", "messages")
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


def split_of(task_key: str, ratio: float) -> str:
    """train or validation, from a hash of the task key without its recipe version, so the same
    task lands in the same split in every export, also after a recipe version bump."""
    stable_key = VERSION_SUFFIX.sub("", task_key)
    digest = hashlib.blake2b(stable_key.encode("utf-8"), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return "train" if fraction < ratio else "validation"


def read_view(warehouse: Warehouse, view: str, recipe: str) -> list[dict[str, Any]]:
    """The rows of a dataset view for one recipe. View names come from recipe classes, never
    from user input; they are still checked against the schema before use."""
    if not queries.select_value(warehouse.conn, "export_relation_exists", relation=view):
        raise ExportError(f"dataset view {view!r} does not exist in {warehouse.path}")
    columns = {row["name"] for row in warehouse.select("export_relation_columns", relation=view)}
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
    rows = queries.iterate(warehouse.conn, "export_task_events", recipe=recipe)
    for task_key, event_id, event_type, request_json in rows:
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
        raise empty_export(warehouse, recipe, include_fallbacks)
    lineage, teachers = task_lineage(warehouse, recipe.name, {row["task_key"] for row in rows})
    columns = list(EXPORT_COLUMNS if stats.get("with_messages") else EXPORT_COLUMNS[:-1])
    columns += sorted({name for row in rows for name in row} - set(columns))
    rows_hash = content_hash("".join(jsonl_lines(rows)))
    with staging_folder(out_dir) as staging:
        json_columns = write_files(staging, fmt, rows, columns, rows_hash)
        manifest = build_manifest(
            recipe,
            fmt=fmt,
            rows=rows,
            columns=columns,
            json_columns=json_columns,
            lineage=lineage,
            teachers=teachers,
            stats=stats,
            data_hash=data_files_hash(staging),
            include_fallbacks=include_fallbacks,
            split_ratio=split_ratio,
        )
        manifest_text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode() + "\n"
        (staging / MANIFEST).write_text(manifest_text, encoding="utf-8")
        (staging / CARD).write_text(render_card(manifest), encoding="utf-8")
    return record_export(warehouse, recipe, out_dir, rows, manifest, manifest_text)


def empty_export(warehouse: Warehouse, recipe: Recipe, include_fallbacks: bool) -> ExportError:
    views = recipe.dataset_view + (
        f" or {recipe.fallback_view}" if include_fallbacks and recipe.fallback_view else ""
    )
    return ExportError(
        f"no samples of recipe {recipe.name!r} in view {views} of {warehouse.path}: "
        f"run `python cli.py run --recipe {recipe.name}` first"
    )


def record_export(
    warehouse: Warehouse,
    recipe: Recipe,
    out_dir: Path,
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    manifest_text: str,
) -> ExportResult:
    """The ``export_written`` event: which samples went where, and the hashes to check it by."""
    sample_ids = sorted(row["sample_id"] for row in rows)
    manifest_hash = content_hash(manifest_text)
    event = ExportWritten(
        export_id=manifest["export_id"],
        recipe=recipe.name,
        format=manifest["format"],
        out_dir=str(out_dir),
        view=manifest["view"],
        include_fallbacks=manifest["include_fallbacks"],
        split_ratio=manifest["split"]["ratio"],
        counts=manifest["counts"]["splits"] | {"total": len(rows)},
        manifest_hash=manifest_hash,
        data_hash=manifest["data_hash"],
        sample_ids_hash=content_hash(canonical_json(sample_ids)),
        sample_ids=canonical_json(sample_ids),
    )
    [record] = warehouse.append([(event, Envelope(recipe=recipe.name))])
    return ExportResult(
        export_id=manifest["export_id"],
        out_dir=out_dir,
        format=manifest["format"],
        counts=event.counts,
        manifest=manifest,
        manifest_hash=manifest_hash,
        event_id=record.event_id,
    )
