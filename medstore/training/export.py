"""Export a recipe's dataset view as JSONL, a `datasets` Arrow folder or Parquet, with lineage.

Every row carries the recipe's own fields plus a chat ``messages`` column ready for SFT, and
``manifest.json`` names, for every row, the sample and the ids of the events behind it.

Determinism: rows are sorted by task key, the split is a hash of the row's group key,
volatile fields (timestamps) are left out and no file holds the time of the export. So the data
files are byte-identical whenever the exported rows are unchanged, and ``manifest.json`` and
``README.md`` are too whenever the rows and the events behind them are unchanged (the export id
is derived from that content). Each export still appends its own ``export_written`` event.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from medstore.recipes.base import Recipe
from medstore.training.dataset_card import render_card
from medstore.training.export_features import column_specs
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
from medstore.training.export_pairs import KINDS, PREFERENCE_FIELDS, build_preference_rows
from medstore.training.export_rows import (
    BASE_COLUMNS,
    DEFAULT_SPLITS,
    EXPORT_COLUMNS,
    PREFERENCE_COLUMNS,
    ExportError,
    build_rows,
    check_splits,
    split_of,
)
from medstore.warehouse import queries
from medstore.warehouse.events import Envelope, ExportWritten
from medstore.warehouse.hashing import canonical_json, content_hash
from medstore.warehouse.store import Warehouse

__all__ = [
    "EXPORT_COLUMNS",
    "KINDS",
    "ExportError",
    "ExportResult",
    "export_dataset",
    "split_of",
]


@dataclass
class ExportResult:
    export_id: str
    out_dir: Path
    format: str
    counts: dict[str, int]
    manifest: dict[str, Any]
    manifest_hash: str
    event_id: str


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
    splits: dict[str, float] = DEFAULT_SPLITS,
    kind: str = "sft",
    left_out: dict[str, str] | None = None,
) -> ExportResult:
    """Write the recipe's dataset to ``out_dir`` (replacing an earlier export there), then record
    an ``export_written`` event. Nothing is written if the dataset is empty. ``splits`` are the
    shares of train, validation and test (the groups, not the rows, are split). ``kind``: sft
    (the samples, with ``messages`` and ``prompt``/``completion``) or preference (DPO pairs:
    ``prompt``, ``chosen``, ``rejected``; see export_pairs). ``left_out``: sample ids not to
    export, with why (a quality scan's duplicates and contaminated rows)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if kind not in KINDS:
        raise ExportError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    splits = check_splits(dict(splits))
    out_dir = Path(out_dir).resolve()
    check_out_dir(out_dir)
    if kind == "preference":
        if include_fallbacks:
            raise ExportError("--include-fallbacks: fallback rows make no preference pairs")
        rows, stats = build_preference_rows(warehouse, recipe, splits=splits, left_out=left_out)
        if not rows:
            raise no_pairs(warehouse, recipe)
    else:
        rows, stats = build_rows(
            warehouse,
            recipe,
            include_fallbacks=include_fallbacks,
            splits=splits,
            left_out=left_out,
        )
    if not rows:
        raise empty_export(warehouse, recipe, include_fallbacks)
    lineage, teachers = task_lineage(warehouse, recipe.name, {row["task_key"] for row in rows})
    columns = export_columns(rows, kind, bool(stats.get("with_messages")))
    declared = recipe.export_features | (PREFERENCE_FIELDS if kind == "preference" else {})
    specs = column_specs(columns, declared)
    rows_hash = content_hash("".join(jsonl_lines(rows)))
    with staging_folder(out_dir) as staging:
        json_columns = write_files(staging, fmt, rows, specs, rows_hash, list(splits), recipe.name)
        manifest = build_manifest(
            recipe,
            fmt=fmt,
            kind=kind,
            rows=rows,
            columns=columns,
            features=specs,
            json_columns=json_columns,
            lineage=lineage,
            teachers=teachers,
            stats=stats,
            data_hash=data_files_hash(staging),
            include_fallbacks=include_fallbacks,
            splits=splits,
        )
        manifest_text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode() + "\n"
        (staging / MANIFEST).write_text(manifest_text, encoding="utf-8")
        (staging / CARD).write_text(render_card(manifest), encoding="utf-8")
    return record_export(warehouse, recipe, out_dir, rows, manifest, manifest_text)


def export_columns(rows: list[dict[str, Any]], kind: str, with_messages: bool) -> list[str]:
    """The exporter's columns first, then the recipe's fields by name."""
    if kind == "preference":
        columns = list(PREFERENCE_COLUMNS)
    else:
        columns = list(EXPORT_COLUMNS if with_messages else BASE_COLUMNS)
    return columns + sorted({name for row in rows for name in row} - set(columns))


def no_pairs(warehouse: Warehouse, recipe: Recipe) -> ExportError:
    return ExportError(
        f"no preference pairs of recipe {recipe.name!r} in {warehouse.path}: no accepted sample "
        f"has a rejected output of stage(s) {', '.join(recipe.preference_stages)} that makes a "
        "pair (e.g. a critic trace with the wrong verdict)"
    )


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
    sample_ids = sorted({row["sample_id"] for row in rows})
    manifest_hash = content_hash(manifest_text)
    event = ExportWritten(
        export_id=manifest["export_id"],
        recipe=recipe.name,
        format=manifest["format"],
        kind=manifest["kind"],
        out_dir=str(out_dir),
        view=manifest["view"],
        include_fallbacks=manifest["include_fallbacks"],
        split_ratio=manifest["split"]["ratio"],
        splits=manifest["split"]["shares"],
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
