"""Task outcomes over time: finished tasks per time bucket, accepted and rejected or failed by
failure kind (the most common kinds by name, the rest together), as stacked columns."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timedelta

from medstore.serve.svg import ACCEPTED, FAILURES, stacked_columns
from medstore.warehouse import queries

MAX_BUCKETS = 30
NAMED_KINDS = 6
# Bucket widths to choose from, smallest first, with how each bucket's label is written.
WIDTHS = (
    (timedelta(minutes=1), "%H:%M"),
    (timedelta(minutes=10), "%H:%M"),
    (timedelta(hours=1), "%m-%d %H:00"),
    (timedelta(hours=6), "%m-%d %H:00"),
    (timedelta(days=1), "%Y-%m-%d"),
    (timedelta(days=7), "%Y-%m-%d"),
    (timedelta(days=30), "%Y-%m"),
)


def outcomes_over_time(conn: sqlite3.Connection) -> str | None:
    rows = [
        (parse_utc(row["updated_utc"]), outcome_name(row["state"], row["failure_kind"]))
        for row in queries.iterate(conn, "serve_task_outcome_times")
    ]
    if not rows:
        return None
    first, last = min(when for when, _ in rows), max(when for when, _ in rows)
    width, fmt = next(((w, f) for w, f in WIDTHS if (last - first) / w < MAX_BUCKETS), WIDTHS[-1])
    count = int((last - first) / width) + 1
    names = ranked_names(name for _, name in rows)
    values = {name: [0.0] * count for name in names}
    for when, name in rows:
        kept = name if name in values else "rejected or failed: other kinds"
        values[kept][int((when - first) / width)] += 1
    labels = [(first + width * index).strftime(fmt) for index in range(count)]
    failures = [name for name in names if name != "accepted"]
    series = [("accepted", values["accepted"], ACCEPTED)] if "accepted" in values else []
    series += [
        (name, values[name], FAILURES[index % len(FAILURES)]) for index, name in enumerate(failures)
    ]
    return stacked_columns(labels, series, y_label="tasks finished")


def outcome_name(state: str, kind: str | None) -> str:
    return "accepted" if state == "accepted" else f"{state}: {kind or '(no reason)'}"


def ranked_names(names) -> list[str]:
    """accepted first, then the most common failure kinds, then one bucket for the rest."""
    counts = Counter(names)
    failures = [name for name, _ in counts.most_common() if name != "accepted"]
    kept = failures[:NAMED_KINDS]
    if len(failures) > NAMED_KINDS:
        kept.append("rejected or failed: other kinds")
    return (["accepted"] if "accepted" in counts else []) + kept


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
