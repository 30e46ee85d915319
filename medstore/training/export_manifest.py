"""``manifest.json`` of an export: what it holds, how it was split and balanced, which teachers
made it, and for every row the sample and the ids of the events behind it. It has no
timestamps, so it is a function of the content and the export id is derived from it."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from medstore import __version__
from medstore.recipes.base import Recipe
from medstore.training.export_files import SPLITS, data_file_names
from medstore.warehouse.hashing import canonical_json, short_hash

SPLIT_RULE = (
    "blake2b-64 of the task key without its version suffix, as a fraction of "
    "2^64: below the ratio is train, the rest validation"
)


def manifest_counts(rows: list[dict[str, Any]], stats: dict[str, int]) -> dict[str, Any]:
    """Rows per split, label, label and split, and origin; chat and think-tag counters."""
    splits = Counter(row["split"] for row in rows)
    labels_by_split: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        labels_by_split[row["split"]][str(row["label"])] += 1
    return {
        "total": len(rows),
        "splits": {split: splits.get(split, 0) for split in SPLITS},
        "labels": dict(sorted(Counter(str(row["label"]) for row in rows).items())),
        "labels_by_split": {
            split: dict(sorted(labels_by_split[split].items())) for split in SPLITS
        },
        "origins": dict(sorted(Counter(row["origin"] for row in rows).items())),
        "with_messages": stats.get("with_messages", 0),
        "think_tags_converted": stats.get("think_tags_converted", 0),
    }


def row_lineage(rows: list[dict[str, Any]], lineage: dict[str, list[str]]) -> list[dict[str, Any]]:
    """For every row: its sample, task, split, origin and the ids of the events behind it."""
    return [
        {
            "sample_id": row["sample_id"],
            "task_key": row["task_key"],
            "split": row["split"],
            "origin": row["origin"],
            "event_ids": lineage.get(row["task_key"], []),
        }
        for row in rows
    ]


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
    """What the export holds and where every row came from, with its export id."""
    view = recipe.dataset_view
    if include_fallbacks and recipe.fallback_view:
        view = f"{view} + {recipe.fallback_view}"
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
        "split": {"ratio": split_ratio, "rule": SPLIT_RULE},
        "counts": manifest_counts(rows, stats),
        "columns": columns,
        "json_encoded_columns": json_columns,
        "left_out_fields": sorted(recipe.volatile_fields),
        "teachers": teachers,
        "licences": list(recipe.licences),
        "credentialed_source": recipe.credentialed_source,
        "data_hash": data_hash,
        "rows": row_lineage(rows, lineage),
    }
    manifest["export_id"] = "x-" + short_hash(canonical_json(manifest))
    return manifest
