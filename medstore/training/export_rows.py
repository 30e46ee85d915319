"""An export's rows: the recipe's view read, each row's group and split, and the balance a recipe
demands kept inside every split.

Splits are by group, not by task: a recipe declares its group key (a MEDEC note, a scenario, a
consultation, a MIMIC subject; ``Recipe.group_key``), and the split is a hash of it, so every
sample of one group lands in the same split (medec-cot's four variants of a note, medec-safe's
paraphrase and as-is note), and a sample keeps its split when samples are added.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from typing import Any

import orjson

from medstore.recipes.base import Recipe
from medstore.training.chat import chat_messages, prompt_completion
from medstore.warehouse import queries
from medstore.warehouse.store import Warehouse

# Columns the exporter adds (the chat ones where the recipe has a chat form; a preference export
# has prompt, chosen and rejected instead); a recipe field of such a name is kept as
# ``sample_<name>``.
BASE_COLUMNS = ("sample_id", "task_key", "group", "split", "label", "origin")
EXPORT_COLUMNS = (*BASE_COLUMNS, "messages", "prompt", "completion")
PREFERENCE_COLUMNS = (*BASE_COLUMNS, "prompt", "chosen", "rejected")
RESERVED_COLUMNS = (*EXPORT_COLUMNS, "chosen", "rejected")
SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_SPLITS = {"train": 0.9, "validation": 0.1}
VERSION_SUFFIX = re.compile(r":v[^:]*$")
SPLIT_RULE = (
    "blake2b-64 of the row's group key (see `group`), as a fraction of 2^64, against the "
    "cumulative shares in the order train, validation, test"
)


class ExportError(Exception):
    """The export cannot be made (no samples, unknown view, occupied folder): one line."""


def parse_splits(text: str) -> dict[str, float]:
    """``train=0.8,validation=0.1,test=0.1``: shares of train, validation and test, summing to 1."""
    splits: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in SPLIT_NAMES:
            raise ExportError(f"--splits: unknown split {name!r} (train, validation, test)")
        if name in splits:
            raise ExportError(f"--splits: {name} given twice")
        try:
            splits[name] = float(value)
        except ValueError:
            raise ExportError(f"--splits: {name}={value!r} is not a number") from None
    return check_splits(splits)


def check_splits(splits: dict[str, float]) -> dict[str, float]:
    """The shares in train, validation, test order; train above 0, none below, sum 1."""
    if any(not 0 <= share <= 1 for share in splits.values()):
        raise ExportError("--splits: every share must be between 0 and 1")
    if splits.get("train", 0) <= 0:
        raise ExportError("--splits: the train share must be above 0")
    if abs(sum(splits.values()) - 1) > 1e-9:
        raise ExportError(f"--splits: the shares sum to {sum(splits.values()):g}, not 1")
    return {name: splits[name] for name in SPLIT_NAMES if name in splits}


def split_of_group(group: str, splits: dict[str, float]) -> str:
    """The split of a group key: the same group, the same split, in every export."""
    digest = hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    bound = 0.0
    for name, share in splits.items():
        bound += share
        if fraction < bound:
            return name
    return next(name for name, share in reversed(splits.items()) if share > 0)


def split_of(task_key: str, ratio: float) -> str:
    """train or validation for a key (a task key's recipe version is ignored): a recipe whose
    group is its task gets the split it always had."""
    stable_key = VERSION_SUFFIX.sub("", task_key)
    return split_of_group(stable_key, {"train": ratio, "validation": 1 - ratio})


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


def export_row(
    recipe: Recipe, origin: str, view_row: dict[str, Any], splits: dict[str, float], stats: Counter
) -> dict[str, Any]:
    sample = orjson.loads(view_row["sample_json"])
    task_key = view_row["task_key"]
    messages, converted = chat_messages(recipe, sample)
    stats["think_tags_converted"] += converted
    group = recipe.group_key(task_key, sample)
    row: dict[str, Any] = {
        "sample_id": view_row["sample_id"],
        "task_key": task_key,
        "group": group,
        "split": split_of_group(group, splits),
        "label": view_row.get("label"),
        "origin": origin,
    }
    if messages is not None:
        row["messages"] = messages
        row["prompt"], row["completion"] = prompt_completion(messages)
        stats["with_messages"] += 1
    for name in sorted(sample):
        if name in recipe.volatile_fields or name == "sample_id":
            continue
        row[f"sample_{name}" if name in RESERVED_COLUMNS else name] = sample[name]
    return row


def build_rows(
    warehouse: Warehouse,
    recipe: Recipe,
    *,
    include_fallbacks: bool,
    splits: dict[str, float] = DEFAULT_SPLITS,
    left_out: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The export rows, sorted by task key, balanced inside every split where the recipe asks,
    and counters (think conversions, messages, rows left out for balance)."""
    sources = [("accepted", recipe.dataset_view)]
    if include_fallbacks and recipe.fallback_view:
        sources.append(("fallback", recipe.fallback_view))
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    left_out = left_out or {}
    by_quality: Counter = Counter()
    for origin, view in sources:
        for view_row in read_view(warehouse, view, recipe.name):
            if view_row["sample_id"] in left_out:
                by_quality[left_out[view_row["sample_id"]]] += 1
                continue
            chosen.setdefault(view_row["task_key"], (origin, view_row))  # accepted rows win
    stats: Counter = Counter()
    rows = [export_row(recipe, *chosen[key], splits, stats) for key in sorted(chosen)]
    left_out_for_balance = balance_in_splits(rows, recipe.balanced_labels)
    return [row for row in rows if row["sample_id"] not in left_out_for_balance], {
        **stats,
        "left_out_for_balance": dict(Counter(left_out_for_balance.values())),
        "left_out_by_quality_scan": dict(sorted(by_quality.items())),
    }


def balance_in_splits(rows: list[dict[str, Any]], labels: tuple[str, ...]) -> dict[str, str]:
    """The rows to leave out (sample id -> split) so that each split holds as many rows of
    each of ``labels`` as of the others. Rows whose group has a partner of another label in
    the same split (a whole medec-safe pair) are kept; of the rest, the last by sample id go."""
    if not labels:
        return {}
    left_out: dict[str, str] = {}
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["label"] in labels:
            by_split[row["split"]].append(row)
    for split, members in by_split.items():
        counts = Counter(row["label"] for row in members)
        target = min(counts.get(label, 0) for label in labels)
        labels_of_group: dict[str, set[str]] = defaultdict(set)
        for row in members:
            labels_of_group[row["group"]].add(row["label"])
        for label in labels:
            candidates = sorted(
                (row for row in members if row["label"] == label),
                key=lambda row: (len(labels_of_group[row["group"]]) == 1, row["sample_id"]),
            )
            excess = counts.get(label, 0) - target
            for row in candidates[len(candidates) - excess :] if excess else []:
                left_out[row["sample_id"]] = split
    return left_out
