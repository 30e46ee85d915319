"""Reviewer verdicts: a person accepts or rejects a sample with a note, as an append-only event.

The verdict carries the sample's recipe and task key in its envelope, so it shows in the
sample's provenance; the `samples` view drops a sample whose latest verdict is a reject.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medstore.warehouse.events import Envelope, ReviewVerdict
from medstore.warehouse.store import Warehouse

VERDICTS = ("accept", "reject")
MAX_NOTE_CHARS = 4_000  # a note explains a verdict; a bigger one bloats every page showing it


class ReviewError(ValueError):
    """A review that cannot be recorded, with a one-line reason."""


def find_sample(warehouse: Warehouse, sample_id: str) -> dict[str, Any] | None:
    """The acceptance event of a sample, whether or not a reviewer has rejected it since."""
    rows = warehouse.select("sample_acceptance_events", sample_id=sample_id)
    accepted = [row for row in rows if row["event_type"] == "sample_accepted"]
    return accepted[-1] if accepted else None


def record_review(
    db_path: str | Path, sample_id: str, verdict: str, note: str, reviewer: str
) -> dict[str, Any]:
    """Append one ReviewVerdict for a sample in a short transaction of its own."""
    [result] = record_reviews(db_path, [sample_id], verdict, note, reviewer)
    return result


def record_reviews(
    db_path: str | Path, sample_ids: list[str], verdict: str, note: str, reviewer: str
) -> list[dict[str, Any]]:
    """Append one ReviewVerdict per sample, all in one short transaction (a bulk verdict is
    recorded whole or not at all).

    Opens its own connection (busy timeout from ``store.connect``), so it waits politely for a
    run that is writing to the same warehouse instead of failing.
    """
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    if not reviewer.strip():
        raise ReviewError("a review needs the reviewer's name")
    if len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"the note has {len(note):,} characters; at most {MAX_NOTE_CHARS:,}")
    if not sample_ids:
        raise ReviewError("no samples chosen: tick at least one")
    with Warehouse(db_path) as warehouse:
        pending = []
        for sample_id in dict.fromkeys(sample_ids):
            sample = find_sample(warehouse, sample_id)
            if sample is None:
                raise ReviewError(f"no sample with id {sample_id!r} in {warehouse.path}")
            event = ReviewVerdict(
                sample_id=sample_id, verdict=verdict, reviewer=reviewer.strip(), note=note.strip()
            )
            envelope = Envelope(
                recipe=sample["recipe"],
                task_key=sample["task_key"],
                stage="review",
                parent_event_id=sample["event_id"],
            )
            pending.append((sample, event, envelope))
        records = warehouse.append([(event, envelope) for _, event, envelope in pending])
    return [
        {
            "event_id": record.event_id,
            "sample_id": event.sample_id,
            "verdict": verdict,
            "reviewer": event.reviewer,
            "note": event.note,
            "recipe": sample["recipe"],
            "task_key": sample["task_key"],
            "created_utc": record.created_utc,
        }
        for (sample, event, _), record in zip(pending, records, strict=True)
    ]
