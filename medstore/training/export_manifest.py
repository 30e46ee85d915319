"""``manifest.json`` of an export: what it holds, how it was split and balanced, which teachers
made it, and for every row the sample and the ids of the events behind it. It has no
timestamps, so it is a function of the content and the export id is derived from it."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from medstore import __version__
from medstore.recipes.base import Recipe
from medstore.training.export_files import data_file_names
from medstore.training.export_rows import SPLIT_RULE
from medstore.warehouse.hashing import canonical_json, short_hash


def manifest_counts(
    rows: list[dict[str, Any]], stats: dict[str, Any], splits: list[str]
) -> dict[str, Any]:
    """Rows and groups per split, labels, label and split, origins; chat and think-tag counters,
    and the rows left out to keep a recipe's labels balanced inside each split."""
    rows_per_split = Counter(row["split"] for row in rows)
    groups: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        groups[row["split"]].add(row["group"])
    labels_by_split: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        labels_by_split[row["split"]][str(row["label"])] += 1
    return {
        "total": len(rows),
        "splits": {split: rows_per_split.get(split, 0) for split in splits},
        "groups": {split: len(groups[split]) for split in splits},
        "labels": dict(sorted(Counter(str(row["label"]) for row in rows).items())),
        "labels_by_split": {
            split: dict(sorted(labels_by_split[split].items())) for split in splits
        },
        "left_out_for_balance": {
            split: stats.get("left_out_for_balance", {}).get(split, 0) for split in splits
        },
        # Duplicates and contaminated rows a quality scan flagged (medstore/quality/scan.py).
        "left_out_by_quality_scan": stats.get("left_out_by_quality_scan", {}),
        "origins": dict(sorted(Counter(row["origin"] for row in rows).items())),
        "with_messages": stats.get("with_messages", 0),
        "samples_with_pairs": stats.get("samples_with_pairs", 0),
        "think_tags_converted": stats.get("think_tags_converted", 0),
    }


def row_lineage(rows: list[dict[str, Any]], lineage: dict[str, list[str]]) -> list[dict[str, Any]]:
    """For every row: its sample, task, group, split, origin and the ids of the events behind
    it."""
    return [
        {
            "sample_id": row["sample_id"],
            "task_key": row["task_key"],
            "group": row["group"],
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
    kind: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    features: dict[str, Any],
    json_columns: list[str],
    lineage: dict[str, list[str]],
    teachers: dict[str, Any],
    stats: dict[str, Any],
    data_hash: str,
    include_fallbacks: bool,
    splits: dict[str, float],
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
        "kind": kind,
        "files": data_file_names(fmt, list(splits), Counter(row["split"] for row in rows)),
        "view": view,
        "include_fallbacks": include_fallbacks,
        "split": {
            "ratio": splits["train"],
            "shares": splits,
            "group_key": recipe.group_by,
            "balanced_labels": list(recipe.balanced_labels),
            "rule": SPLIT_RULE,
        },
        "counts": manifest_counts(rows, stats, list(splits)),
        "columns": columns,
        # Every column's declared type (see medstore.training.export_features).
        "features": features,
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
