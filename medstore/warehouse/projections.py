"""Derived tables that the writer keeps in step with the log, in the same transaction.

`sample_index` (what `samples` reads), `run_totals` and `run_failures` (what `run_summary` and
`status` read) and `answered_requests` (what resume's cache index reads) are projections of the
events: migrations m003 and m005 build them from the log. Both writers (`append_records` and
`merge`) call `project` after inserting a batch, so the tables are never ahead of or behind it.

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
SUMS = (*COUNTED.values(), "input_tokens", "output_tokens", "cost_usd")

RUN_TOTALS_UPSERT = f"""
INSERT INTO run_totals (run_id, recipe, started_utc, finished_utc, status, {", ".join(SUMS)})
VALUES (:run_id, :recipe, :started_utc, :finished_utc, :status, {", ".join(":" + s for s in SUMS)})
ON CONFLICT (run_id) DO UPDATE SET
    recipe = coalesce(max(recipe, excluded.recipe), recipe, excluded.recipe),
    started_utc = min(started_utc, excluded.started_utc),
    finished_utc = coalesce(
        max(finished_utc, excluded.finished_utc), finished_utc, excluded.finished_utc
    ),
    status = coalesce(max(status, excluded.status), status, excluded.status),
    {", ".join(f"{s} = {s} + excluded.{s}" for s in SUMS)}
"""

RUN_FAILURE_UPSERT = """
INSERT INTO run_failures VALUES (?, ?, ?)
ON CONFLICT (run_id, reason) DO UPDATE SET n = n + excluded.n
"""

# A new outcome (accepted or rejected) for a task: its current sample leaves the dataset, and
# if it headed a group of exact copies, the next copy takes over.
SAMPLE_LEAVES = (
    """
    UPDATE sample_index SET is_copy = 0
    WHERE accepted_id = (
        SELECT min(copy.accepted_id)
        FROM sample_index leaving
        JOIN sample_index copy
          ON copy.is_current AND copy.recipe = leaving.recipe
         AND copy.content_hash = leaving.content_hash
         AND copy.accepted_id != leaving.accepted_id
        WHERE leaving.is_current AND NOT leaving.is_copy
          AND leaving.recipe = :recipe AND leaving.task_key = :task_key
    )
    """,
    """
    UPDATE sample_index SET is_current = 0
    WHERE is_current AND recipe = :recipe AND task_key = :task_key
    """,
)
SAMPLE_ARRIVES = """
INSERT INTO sample_index
SELECT
    (SELECT id FROM events WHERE event_id = :event_id), :event_id, :sample_id, :recipe,
    :task_key, :label, :run_id, :created_utc, :content_hash, :sample_blob,
    1,
    EXISTS (
        SELECT 1 FROM sample_index copy
        WHERE copy.is_current AND copy.recipe = :recipe AND copy.content_hash = :content_hash
    ),
    json_extract(review.payload_json, '$.verdict'),
    json_extract(review.payload_json, '$.note')
FROM (SELECT 1)
LEFT JOIN (
    SELECT payload_json FROM events
    WHERE event_type IN ('sample_accepted', 'review_verdict')
      AND json_extract(payload_json, '$.sample_id') = :sample_id
      AND event_type = 'review_verdict'
    ORDER BY id DESC
    LIMIT 1
) review
"""
SAMPLE_REVIEWED = """
UPDATE sample_index SET review_verdict = :verdict, review_note = :note
WHERE sample_id = :sample_id
"""


def project(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Bring the derived tables up to date with ``rows``, just inserted, in their order."""
    totals: dict[str, dict[str, Any]] = {}
    failures: dict[tuple[str, str], int] = {}
    answered: list[tuple[str]] = []
    for row in rows:
        kind = row[TYPE]
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
    if answered:
        conn.executemany("INSERT OR IGNORE INTO answered_requests VALUES (?)", answered)
    if totals:
        conn.executemany(RUN_TOTALS_UPSERT, list(totals.values()))
    if failures:
        conn.executemany(RUN_FAILURE_UPSERT, [(*key, n) for key, n in failures.items()])


def move_sample(conn: sqlite3.Connection, row: Sequence[Any]) -> None:
    """Apply one sample_accepted, sample_rejected or review_verdict event to `sample_index`."""
    payload = orjson.loads(row[PAYLOAD])
    if row[TYPE] == "review_verdict":
        conn.execute(
            SAMPLE_REVIEWED,
            {
                "verdict": payload.get("verdict"),
                "note": payload.get("note"),
                "sample_id": payload.get("sample_id"),
            },
        )
        return
    task = {"recipe": row[RECIPE], "task_key": row[TASK_KEY]}
    for statement in SAMPLE_LEAVES:
        conn.execute(statement, task)
    if row[TYPE] == "sample_accepted":
        conn.execute(
            SAMPLE_ARRIVES,
            {
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
