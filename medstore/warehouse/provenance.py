"""A sample's whole history, from its source record to the latest review, with blobs resolved."""

from __future__ import annotations

import json
from typing import Any

from medstore.warehouse.store import Warehouse


class UnknownSample(LookupError):
    pass


def resolve_payload(warehouse: Warehouse, payload: dict[str, Any]) -> dict[str, Any]:
    """Replace ``*_blob`` references and message contents with their texts."""
    resolved: dict[str, Any] = {}
    for key, value in payload.items():
        if key.endswith("_blob"):
            text = warehouse.blob(value)
            name = key[: -len("_blob")]
            resolved[name] = (
                decode_json_text(text)
                if name in ("sample", "source_record", "fallback_sample")
                else text
            )
        elif key == "messages":
            resolved[key] = warehouse.messages(value)
        else:
            resolved[key] = value
    return resolved


def decode_json_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def sample_provenance(warehouse: Warehouse, sample_id: str) -> list[dict[str, Any]]:
    """Every event of the sample's task, in log order, plus any event that names the sample."""
    rows = warehouse.select("sample_provenance", sample_id=sample_id)
    if not rows:
        raise UnknownSample(f"no sample with id {sample_id!r} in {warehouse.path}")
    events = []
    for row in rows:
        payload = json.loads(row.pop("payload_json"))
        row.pop("sample_id")
        row["payload"] = resolve_payload(warehouse, payload)
        events.append(row)
    return events


def describe_event(event: dict[str, Any]) -> str:
    """One headline per event for the readable provenance listing."""
    payload = event["payload"]
    kind = event["event_type"]
    if kind == "task_started":
        return f"source record {payload['source_id']}"
    if kind == "llm_request":
        return (
            f"request to {payload['backend']} {payload['model']} "
            f"(template {payload.get('prompt_template')}, params {json.dumps(payload['params'])})"
        )
    if kind == "llm_response":
        cost = payload.get("cost_usd")
        return (
            f"response: {payload.get('input_tokens')} in / {payload.get('output_tokens')} out "
            f"tokens, {payload['latency_ms']:,.0f} ms, finish {payload.get('finish_reason')}, "
            + (f"cost ${cost:.4f}" if cost is not None else "cost unknown (no price for the model)")
        )
    if kind == "cache_replay":
        return f"replayed from event {payload['replayed_event_id']}"
    if kind == "llm_error":
        return (
            f"error {payload['kind']} (status {payload.get('status')}, retry "
            f"{payload['retry_number']}, will retry: {payload['will_retry']}): {payload['message']}"
        )
    if kind == "validation_verdict":
        verdict = "passed" if payload["passed"] else "failed: " + "; ".join(payload["errors"])
        return f"validation {verdict}"
    if kind == "parse_failed":
        return "parse failed: " + "; ".join(payload["errors"])
    if kind == "repair_requested":
        return f"repair {payload['repair_attempt']} requested: " + "; ".join(payload["errors"])
    if kind == "sample_accepted":
        return f"accepted as {payload['sample_id']} (label {payload.get('label')})"
    if kind == "sample_rejected":
        return f"rejected: {payload['reason']}"
    if kind == "task_failed":
        return f"failed: {payload['reason']}: {payload.get('message', '')}"
    if kind == "review_verdict":
        return f"review by {payload['reviewer']}: {payload['verdict']} {payload.get('note', '')}"
    return kind


def render_text(events: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for event in events:
        where = "/".join(
            str(part) for part in (event["stage"], event["attempt"]) if part is not None
        )
        lines.append(
            f"[{event['created_utc']}] {event['event_type']:<18} {where:<14} "
            f"{describe_event(event)}"
        )
        payload = event["payload"]
        if event["event_type"] == "llm_request":
            for message in payload["messages"]:
                lines.append(f"    --- {message['role']} ---")
                lines.extend("    " + line for line in message["content"].splitlines())
        elif event["event_type"] in ("llm_response", "cache_replay"):
            lines.append("    --- raw output ---")
            lines.extend("    " + line for line in (payload.get("raw_output") or "").splitlines())
        elif event["event_type"] == "sample_accepted":
            lines.extend(
                "    " + line
                for line in json.dumps(payload["sample"], indent=2, ensure_ascii=False).splitlines()
            )
    return "\n".join(lines)
