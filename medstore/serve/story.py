"""A task's whole story for its page, and a sample's for the provenance page: the task's events
in order (source record, prompts, raw outputs, checks with their failure kinds, repairs, the
outcome), then for a sample the exports, training runs and evaluations that used it."""

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
# The events that decide a task's state, and the state each means (task_state's rule).
OUTCOMES = {
    "task_started": "pending",
    "sample_accepted": "accepted",
    "sample_rejected": "rejected",
    "task_failed": "failed",
}


class UnknownTask(LookupError):
    pass


def task_story(warehouse: Warehouse, recipe: str, task_key: str) -> dict[str, Any]:
    """The task page's data. Raises UnknownTask for a task the log has no events of."""
    events = resolved(warehouse.select("serve_task_events", recipe=recipe, task_key=task_key))
    if not events:
        raise UnknownTask(f"no task {task_key!r} of recipe {recipe!r} in {warehouse.path}")
    decorate(warehouse, events, [(recipe, task_key)])
    return {
        "recipe": recipe,
        "task_key": task_key,
        "outcome": outcome(events),
        "samples": warehouse.select("serve_task_samples", recipe=recipe, task_key=task_key),
        "stages": stage_summary(events),
        "events": events,
    }


def sample_story(warehouse: Warehouse, sample_id: str) -> dict[str, Any]:
    """The provenance page's data. Raises provenance.UnknownSample for an unknown id."""
    tasks = warehouse.select("serve_sample_tasks", sample_id=sample_id)
    if not tasks:
        raise UnknownSample(f"no sample with id {sample_id!r} in {warehouse.path}")
    rows = []
    for task in tasks:
        rows += warehouse.select(
            "serve_task_events", recipe=task["recipe"], task_key=task["task_key"]
        )
    events = resolved(sorted(rows, key=lambda row: row["id"]))
    events += lineage_events(warehouse, sample_id)
    decorate(warehouse, events, [(task["recipe"], task["task_key"]) for task in tasks])
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
        "outcome": outcome(events),
        "stages": stage_summary(events),
        "events": events,
    }


def resolved(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event rows (of `serve_task_events`) with their payloads decoded, blobs not yet read."""
    for row in rows:
        row["payload"] = json.loads(row.pop("payload_json"))
    return rows


def decorate(
    warehouse: Warehouse, events: list[dict[str, Any]], tasks: list[tuple[str, str]]
) -> None:
    """Read each event's blobs, and give it its section, headline and, for a check, its
    failures (kind and message, from the check_failures view)."""
    kinds: dict[tuple[str, int], str] = {}
    for recipe, task_key in tasks:
        for row in warehouse.select("serve_task_check_failures", recipe=recipe, task_key=task_key):
            kinds[(row["event_id"], row["error_index"])] = row["failure_kind"]
    for event in events:
        event["payload"] = resolve_payload(warehouse, event["payload"])
        event["section"] = SECTIONS.get(event["event_type"], "other")
        event["headline"] = headline(event)
        errors = event["payload"].get("errors") or []
        event["failures"] = [
            {"kind": kinds.get((event["event_id"], index)), "message": message}
            for index, message in enumerate(errors)
        ]


def outcome(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's final state and why: its latest deciding event, with the failures of its last
    failed check for a rejection."""
    deciding = [e for e in events if e["event_type"] in OUTCOMES]
    last = deciding[-1] if deciding else None
    state = OUTCOMES[last["event_type"]] if last else "pending"
    checks = [e for e in events if e["section"] == "check" and e["failures"]]
    failures: list[dict[str, Any]] = []
    reason = None
    if state == "rejected":
        reason = last["payload"].get("reason")
        failures = checks[-1]["failures"] if checks else last["failures"]
    elif state == "failed":
        reason = last["payload"].get("reason")
        failures = [{"kind": reason, "message": last["payload"].get("message")}]
    return {
        "state": state,
        "reason": reason,
        "failures": failures,
        "event_id": last["event_id"] if last else None,
        "sample_id": last["payload"].get("sample_id") if last else None,
    }


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
            row["payload"] = payload
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
