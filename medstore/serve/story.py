"""One sample's whole story for the provenance page: its task's events, then the exports,
training runs and evaluations that used it, each with a headline and the texts to show."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from medstore.warehouse.provenance import UnknownSample, describe_event, resolve_payload
from medstore.warehouse.store import Warehouse

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
        "status": sample_status(warehouse, sample_id, events),
        "stages": stage_summary(events),
        "events": events,
    }


def task_events(warehouse: Warehouse, sample_id: str) -> list[dict[str, Any]]:
    """Every event of the sample's task in log order (the rows of the `provenance` view), found
    through `sample_index` so that the page costs two index lookups at any warehouse size."""
    tasks = warehouse.select("serve_sample_tasks", sample_id=sample_id)
    if not tasks:
        raise UnknownSample(f"no sample with id {sample_id!r} in {warehouse.path}")
    rows = []
    for task in tasks:
        rows += warehouse.select(
            "serve_task_events", recipe=task["recipe"], task_key=task["task_key"]
        )
    events = []
    for row in sorted(rows, key=lambda row: row["id"]):
        row["payload"] = resolve_payload(warehouse, json.loads(row.pop("payload_json")))
        events.append(row)
    return events


def lineage_events(warehouse: Warehouse, sample_id: str) -> list[dict[str, Any]]:
    """Exports that contain the sample, the training runs on those exports, and their evals."""
    if not warehouse.select_value("serve_has_view", view="sample_exports"):
        return []
    exports = warehouse.select("serve_sample_exports", sample_id=sample_id)
    if not exports:
        return []
    export_events = {row["export_event_id"] for row in exports}
    export_ids = {row["export_id"] for row in exports}
    candidates = warehouse.select("serve_lineage_events")
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
    warehouse: Warehouse, sample_id: str, events: list[dict[str, Any]]
) -> dict[str, Any]:
    """Whether the sample is in the dataset now, and if not, why: the `sample_membership` view's
    answer (the one statement of the rule), with the latest review of it from its events."""
    membership = warehouse.select_one("sample_membership", sample_id=sample_id)
    reviews = [
        e
        for e in events
        if e["event_type"] == "review_verdict" and e["payload"].get("sample_id") == sample_id
    ]
    review = reviews[-1]["payload"] if reviews else None
    reasons = []
    if membership["superseded"]:
        reasons.append("a later outcome of its task replaced it")
    if membership["duplicate_of"]:
        reasons.append(f"exact duplicate of the earlier sample {membership['duplicate_of']}")
    if membership["reviewer_rejected"]:
        reviewer = review["reviewer"] if review else "(unknown)"
        reasons.append(f"rejected by reviewer {reviewer}")
    return {
        "in_dataset": bool(membership["in_dataset"]),
        "reasons": reasons,
        "review": review,
        "duplicate_of": membership["duplicate_of"],
    }
