"""Preference pairs for DPO, from the event log: the prompt of an accepted sample, its verified
answer as ``chosen``, and as ``rejected`` an answer the teacher gave for the same task that
validation turned down (medec-cot: a critic trace with the wrong verdict).

Both answers are the teacher's own, recorded as raw outputs: nothing is generated here. A recipe
opts in with ``preference_stages`` and ``rejected_sample`` (which rejected outputs make a pair,
and how one reads as a sample); the chat form is the recipe's ``to_messages`` for both, so
chosen and rejected differ only in what the teacher wrote.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import orjson

from medstore.recipes.base import Recipe
from medstore.training.chat import chat_messages, prompt_completion
from medstore.training.export_rows import ExportError, read_view, split_of_group
from medstore.warehouse.store import Warehouse

KINDS = ("sft", "preference")
# Columns a preference row has beside the pair: which response was rejected and why.
PREFERENCE_FIELDS = {"rejected_event_id": "string", "rejected_errors": ["string"]}


def rejected_outputs(warehouse: Warehouse, recipe: Recipe) -> dict[str, list[dict[str, Any]]]:
    """The failed outputs of the recipe's preference stages, by task, in log order."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in warehouse.select("export_rejected_outputs", recipe=recipe.name):
        if row["stage"] in recipe.preference_stages:
            by_task.setdefault(row["task_key"], []).append(row)
    return by_task


def answer(recipe: Recipe, sample: dict[str, Any]) -> tuple[list[dict], list[dict], bool]:
    messages, converted = chat_messages(recipe, sample)
    if messages is None:
        raise ExportError(f"recipe {recipe.name} has no chat form, so no preference pairs")
    prompt, completion = prompt_completion(messages)
    return prompt, completion, converted


def pair_rows(
    recipe: Recipe,
    view_row: dict[str, Any],
    failures: list[dict[str, Any]],
    splits: dict[str, float],
    stats: Counter,
) -> list[dict[str, Any]]:
    """One row per distinct rejected answer of the sample's task that makes a pair."""
    sample = orjson.loads(view_row["sample_json"])
    prompt, chosen, converted = answer(recipe, sample)
    stats["think_tags_converted"] += converted
    group = recipe.group_key(view_row["task_key"], sample)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for failure in failures:
        errors = json.loads(failure["errors_json"] or "[]")
        rejected_sample = recipe.rejected_sample(
            sample, failure["stage"], failure["raw_output"], errors
        )
        if rejected_sample is None:
            stats["rejected_outputs_without_pair"] += 1
            continue
        _, rejected, _ = answer(recipe, rejected_sample)
        text = rejected[0]["content"]
        if text in seen or rejected == chosen:
            stats["duplicate_rejected_answers"] += 1
            continue
        seen.add(text)
        rows.append(
            {
                "sample_id": view_row["sample_id"],
                "task_key": view_row["task_key"],
                "group": group,
                "split": split_of_group(group, splits),
                "label": view_row.get("label"),
                "origin": "accepted",
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "rejected_event_id": failure["response_event_id"],
                "rejected_errors": errors,
            }
        )
    return rows


def build_preference_rows(
    warehouse: Warehouse,
    recipe: Recipe,
    *,
    splits: dict[str, float],
    left_out: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pairs of every accepted sample in the recipe's dataset view, sorted by task key and
    rejected response; and counters (samples with a pair, rejected outputs that make none).
    ``left_out``: sample ids to skip, with why (the quality scan's duplicates, contamination)."""
    if not recipe.preference_stages:
        raise ExportError(
            f"recipe {recipe.name!r} has no preference pairs (--kind preference needs a recipe "
            "that declares them, e.g. medec-cot)"
        )
    failures = rejected_outputs(warehouse, recipe)
    stats: Counter = Counter()
    rows: list[dict[str, Any]] = []
    view_rows = sorted(
        read_view(warehouse, recipe.dataset_view, recipe.name), key=lambda r: r["task_key"]
    )
    left_out = left_out or {}
    by_quality: Counter = Counter()
    for view_row in view_rows:
        if view_row["sample_id"] in left_out:
            by_quality[left_out[view_row["sample_id"]]] += 1
            continue
        found = pair_rows(recipe, view_row, failures.get(view_row["task_key"], []), splits, stats)
        stats["samples_with_pairs"] += bool(found)
        rows += found
    stats["with_messages"] = len(rows)
    return rows, {
        **stats,
        "left_out_for_balance": {},
        "left_out_by_quality_scan": dict(sorted(by_quality.items())),
    }
