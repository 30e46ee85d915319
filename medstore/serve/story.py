"""One sample's whole story for the provenance page: its task's events, then the exports,
training runs and evaluations that used it, each with a headline and the texts to show."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from medstore.warehouse.provenance import UnknownSample, describe_event, resolve_payload
from medstore.warehouse.store import Warehouse

LINEAGE_TYPES = ("export_written", "training_started", "training_finished", "eval_result")

SECTIONS = {
    "task_started": "source",
    "llm_request": "prompt",
    "llm_response": "output",
    "cache_replay": "output",
    "llm_error": "error",
    "parse_failed": "check",
    "validation_verdict": "check",
    "repair_requested": "repair",
    "sample_accepted": "accepted",
    "sample_rejected": "rejected",
    "task_failed": "error",
    "review_verdict": "review",
    "export_written": "export",
    "training_started": "training",
    "training_finished": "training",
    "eval_result": "eval",
}


def sample_story(warehouse: Warehouse, sample_id: str) -> dict[str, Any]:
    """The provenance page's data. Raises provenance.UnknownSample for an unknown id."""
    events = task_events(warehouse, sample_id)
    events += lineage_events(warehouse, sample_id)
    for event in events:
        event["section"] = SECTIONS.get(event["event_type"], "other")
        event["headline"] = headline(event)
    accepted = [
        e
        for e in events
        if e["event_type"] == "sample_accepted" and e["payload"]["sample_id"] == sample_id
    ][-1]
    return {
        "sample_id": sample_id,
        "recipe": accepted["recipe"],
        "task_key": accepted["task_key"],
        "label": accepted["payload"].get("label"),
        "sample": accepted["payload"].get("sample"),
        "status": sample_status(warehouse, events, accepted),
        "stages": stage_summary(events),
        "events": events,
    }


def task_events(warehouse: Warehouse, sample_id: str) -> list[dict[str, Any]]:
    """Every event of the sample's task in log order (the rows of the `provenance` view), found
    through `sample_index` so that the page costs two index lookups at any warehouse size."""
    tasks = warehouse.query(
        "SELECT DISTINCT recipe, task_key FROM sample_index WHERE sample_id = ?", (sample_id,)
    )
    if not tasks:
        raise UnknownSample(f"no sample with id {sample_id!r} in {warehouse.path}")
    rows = []
    for task in tasks:
        rows += warehouse.query(
            "SELECT id, event_id, run_id, recipe, task_key, stage, attempt, event_type,"
            " parent_event_id, created_utc, payload_json FROM events"
            " WHERE recipe = ? AND task_key = ? ORDER BY id",
            (task["recipe"], task["task_key"]),
        )
    events = []
    for row in sorted(rows, key=lambda row: row["id"]):
        row["payload"] = resolve_payload(warehouse, json.loads(row.pop("payload_json")))
        events.append(row)
    return events


def lineage_events(warehouse: Warehouse, sample_id: str) -> list[dict[str, Any]]:
    """Exports that contain the sample, the training runs on those exports, and their evals."""
    has_view = warehouse.query(
        "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = 'sample_exports'"
    )
    if not has_view:
        return []
    exports = warehouse.query(
        "SELECT export_event_id, export_id FROM sample_exports WHERE sample_id = ?", (sample_id,)
    )
    if not exports:
        return []
    export_events = {row["export_event_id"] for row in exports}
    export_ids = {row["export_id"] for row in exports}
    placeholders = ", ".join("?" * len(LINEAGE_TYPES))
    candidates = warehouse.query(
        f"SELECT * FROM events WHERE event_type IN ({placeholders}) ORDER BY id", LINEAGE_TYPES
    )
    training_runs: set[str] = set()
    chosen = []
    for row in candidates:
        payload = json.loads(row["payload_json"])
        kind = row["event_type"]
        if kind == "export_written":
            keep = row["event_id"] in export_events
        elif kind == "training_started":
            keep = payload.get("export_id") in export_ids
            if keep:
                training_runs.add(payload["training_run_id"])
        else:
            keep = payload.get("training_run_id") in training_runs
        if keep:
            # The export's list of sample ids can be huge; the page shows its count instead.
            payload.pop("sample_ids_blob", None)
            row.pop("payload_json")
            row["payload"] = resolve_payload(warehouse, payload)
            chosen.append(row)
    return chosen


def headline(event: dict[str, Any]) -> str:
    payload = event["payload"]
    kind = event["event_type"]
    if kind == "export_written":
        counts = ", ".join(f"{n} {split}" for split, n in payload.get("counts", {}).items())
        return f"exported as {payload['format']} to {payload['out_dir']} ({counts})"
    if kind == "training_started":
        return (
            f"training run {payload['training_run_id']}: {payload['method']} on "
            f"{payload['base_model']}"
        )
    if kind == "training_finished":
        return f"training run {payload['training_run_id']} {payload['status']}"
    if kind == "eval_result":
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in payload.get("metrics", {}).items())
        return f"eval {payload['task']} of {payload['role']} model {payload['model']}: {metrics}"
    return describe_event(event)


def stage_summary(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage, in order of first appearance: calls, repairs, errors and the last verdict."""
    stages: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for event in events:
        stage = event["stage"]
        if stage is None or event["section"] in ("review", "export", "training", "eval"):
            continue
        entry = stages.setdefault(
            stage, {"stage": stage, "calls": 0, "repairs": 0, "errors": 0, "verdict": None}
        )
        kind = event["event_type"]
        if kind == "llm_request":
            entry["calls"] += 1
        elif kind == "repair_requested":
            entry["repairs"] += 1
        elif kind == "llm_error":
            entry["errors"] += 1
        elif kind == "validation_verdict":
            entry["verdict"] = "passed" if event["payload"]["passed"] else "failed"
        elif kind == "parse_failed":
            entry["verdict"] = "unparseable"
    return list(stages.values())


def sample_status(
    warehouse: Warehouse, events: list[dict[str, Any]], accepted: dict[str, Any]
) -> dict[str, Any]:
    """Whether the sample is in the dataset now, and if not, why (mirrors the samples view)."""
    terminal = [e for e in events if e["event_type"] in ("sample_accepted", "sample_rejected")]
    superseded = terminal[-1]["event_id"] != accepted["event_id"]
    reviews = [e for e in events if e["event_type"] == "review_verdict"]
    review = reviews[-1]["payload"] if reviews else None
    first_copy = warehouse.query(
        "SELECT sample_id FROM sample_index WHERE recipe = ? AND content_hash = ? AND is_current"
        " ORDER BY accepted_id LIMIT 1",
        (accepted["recipe"], accepted["payload"]["content_hash"]),
    )
    duplicate_of = first_copy[0]["sample_id"] if first_copy else None
    if duplicate_of == accepted["payload"]["sample_id"]:
        duplicate_of = None
    reasons = []
    if superseded:
        reasons.append("a later outcome of its task replaced it")
    if duplicate_of:
        reasons.append(f"exact duplicate of the earlier sample {duplicate_of}")
    if review and review["verdict"] == "reject":
        reasons.append(f"rejected by reviewer {review['reviewer']}")
    return {
        "in_dataset": not reasons,
        "reasons": reasons,
        "review": review,
        "duplicate_of": duplicate_of,
    }
