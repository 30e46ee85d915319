"""Derived tables that the writer keeps in step with the log, in the same transaction.

`sample_index` (what `samples` reads), `task_heads` (what `task_state`, resume and `status`
read), `run_totals` and `run_failures` (what `run_summary` and `status` read),
`answered_requests` (what resume's cache index reads) and `event_counts` (what `serve` counts
and facets the events page from) are projections of the events: migrations m003, m005, m008
and m011 build them from the log. Both writers (`append_records` and `merge`) call `project`
after inserting a batch, so the tables are never ahead of or behind it.

This used to be AFTER INSERT triggers. Any trigger on `events`, even one whose WHEN is false,
makes SQLite copy each new row (its payload included) for NEW: appends ran at 21,000 events/s
with the triggers and 46,000 without. Here the per-run counters are summed in Python once per
batch, and the sample statements run only for the rare events that move a sample.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from medstore.warehouse import queries

# Positions in an event row: EVENT_COLUMNS, then prev_hash and hash (see store.py).
EVENT_ID, RUN_ID, RECIPE, TASK_KEY, STAGE, ATTEMPT, TYPE, PARENT, PAYLOAD, CREATED = range(10)

COUNTED = {
    "task_started": "tasks_started",
    "sample_accepted": "accepted",
    "sample_rejected": "rejected",
    "task_failed": "failed",
    "source_skipped": "source_skipped",
    "llm_request": "llm_requests",
    "llm_response": "llm_responses",
    "cache_replay": "cache_replays",
    "llm_error": "llm_errors",
    "repair_requested": "repairs",
}
FAILURES = ("sample_rejected", "task_failed", "source_skipped")
DECIDING = ("task_started", "sample_accepted", "sample_rejected", "task_failed")
SUMS = (*COUNTED.values(), "input_tokens", "output_tokens", "cost_usd")


def project(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Bring the derived tables up to date with ``rows``, just inserted, in their order."""
    totals: dict[str, dict[str, Any]] = {}
    failures: dict[tuple[str, str], int] = {}
    answered: list[tuple[str]] = []
    heads: list[tuple[str]] = []
    kinds: dict[tuple[str | None, str], int] = {}
    for row in rows:
        kind = row[TYPE]
        kinds[row[RECIPE], kind] = kinds.get((row[RECIPE], kind), 0) + 1
        if kind in DECIDING:
            heads.append((row[EVENT_ID],))
        payload = None
        if kind in ("llm_response", "cache_replay", "run_finished") or kind in FAILURES:
            payload = orjson.loads(row[PAYLOAD])
        if kind in ("llm_response", "cache_replay") and payload.get("request_hash"):
            answered.append((payload["request_hash"],))
        if kind in ("sample_accepted", "sample_rejected", "review_verdict"):
            move_sample(conn, row)
        run_id = row[RUN_ID]
        if run_id is None:
            continue
        run = totals.get(run_id)
        if run is None:
            run = totals[run_id] = dict.fromkeys(SUMS, 0) | {
                "run_id": run_id,
                "recipe": None,
                "started_utc": row[CREATED],
                "finished_utc": None,
                "status": None,
            }
        run["started_utc"] = min(run["started_utc"], row[CREATED])
        if kind in COUNTED:
            run[COUNTED[kind]] += 1
        if kind == "run_started":
            run["recipe"] = max(filter(None, (run["recipe"], row[RECIPE])), default=None)
        elif kind == "run_finished":
            run["finished_utc"] = max(filter(None, (run["finished_utc"], row[CREATED])))
            status = payload.get("status")
            run["status"] = max(filter(None, (run["status"], status)), default=None)
        elif kind == "llm_response":
            run["input_tokens"] += payload.get("input_tokens") or 0
            run["output_tokens"] += payload.get("output_tokens") or 0
            run["cost_usd"] += payload.get("cost_usd") or 0
        elif kind in FAILURES:
            key = (run_id, payload.get("reason") or "")
            failures[key] = failures.get(key, 0) + 1
    counted = [{"recipe": r, "event_type": kind, "n": n} for (r, kind), n in kinds.items()]
    queries.execute_many(conn, "projection_count_events", counted)
    if answered:
        queries.execute_many(conn, "projection_add_answered", answered)
    if heads:
        queries.execute_many(conn, "projection_task_head", heads)
    if totals:
        queries.execute_many(conn, "projection_add_run_totals", list(totals.values()))
    if failures:
        queries.execute_many(
            conn, "projection_add_run_failures", [(*key, n) for key, n in failures.items()]
        )


def move_sample(conn: sqlite3.Connection, row: Sequence[Any]) -> None:
    """Apply one sample_accepted, sample_rejected or review_verdict event to `sample_index`."""
    payload = orjson.loads(row[PAYLOAD])
    if row[TYPE] == "review_verdict":
        queries.execute(
            conn,
            "projection_sample_reviewed",
            verdict=payload.get("verdict"),
            note=payload.get("note"),
            sample_id=payload.get("sample_id"),
        )
        return
    task = {"recipe": row[RECIPE], "task_key": row[TASK_KEY]}
    queries.execute(conn, "projection_promote_next_copy", **task)
    queries.execute(conn, "projection_retire_current", **task)
    if row[TYPE] == "sample_accepted":
        queries.execute(
            conn,
            "projection_sample_arrives",
            **{
                **task,
                "event_id": row[EVENT_ID],
                "sample_id": payload.get("sample_id"),
                "label": payload.get("label"),
                "run_id": row[RUN_ID],
                "created_utc": row[CREATED],
                "content_hash": payload.get("content_hash"),
                "sample_blob": payload.get("sample_blob"),
            },
        )
