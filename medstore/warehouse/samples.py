"""Samples as lists people work through: one-line summaries, the conversation inside a sample,
and the reviewable samples filtered by recipe, label, review state and gate (the `review_queue`
view), for `cli.py samples` and the review queue page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from medstore.warehouse.store import Warehouse

REVIEW_STATES = ("unreviewed", "accepted", "rejected")
SPEAKER_KEYS = ("speaker", "role", "from")
TEXT_KEYS = ("text", "content", "utterance", "value")
TOPIC_KEYS = ("specialty", "topic", "task")
# Fields that usually say what a sample is about, tried before any other long text.
PREFERRED_TEXT = ("summary", "question", "Description", "Patient", "note", "text")
PATIENT_SPEAKERS = ("patient", "user", "human")


@dataclass(frozen=True)
class QueueFilter:
    """What a reviewer narrows the queue to; blank means any. ``state`` is a review state."""

    recipe: str = ""
    label: str = ""
    state: str = ""
    gate: str = ""
    judge_min: float | None = None
    judge_max: float | None = None

    def params(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "label": self.label,
            "gate": self.gate,
            "judge_min": self.judge_min,
            "judge_max": self.judge_max,
        }

    def check(self) -> None:
        if self.state and self.state not in REVIEW_STATES:
            raise ValueError(f"state must be one of {', '.join(REVIEW_STATES)}, not {self.state!r}")


def turn_speaker(turn: dict[str, Any]) -> str | None:
    return next((str(turn[key]) for key in SPEAKER_KEYS if turn.get(key)), None)


def turn_text(turn: dict[str, Any]) -> str | None:
    return next((turn[key] for key in TEXT_KEYS if isinstance(turn.get(key), str)), None)


def conversation_turns(value: Any) -> list[dict[str, Any]] | None:
    """The value itself when it is a conversation: a non-empty list of turns, each a dict with
    a speaker (or role) and a text (or content)."""
    if not isinstance(value, list) or not value:
        return None
    for turn in value:
        if not isinstance(turn, dict) or turn_speaker(turn) is None or turn_text(turn) is None:
            return None
    return value


def find_conversation(sample: dict[str, Any]) -> list[dict[str, Any]] | None:
    return next(
        (turns for turns in map(conversation_turns, sample.values()) if turns is not None), None
    )


def summarize(sample: Any, width: int = 160) -> str:
    """One line saying what a sample is: its topic, then a conversation's first patient turn
    (with the number of turns), else its most telling text."""
    if not isinstance(sample, dict):
        return shorten(json.dumps(sample, ensure_ascii=False), width)
    topic = [str(sample[key]) for key in TOPIC_KEYS if isinstance(sample.get(key), str)]
    turns = find_conversation(sample)
    if turns is not None:
        first = next(
            (t for t in turns if (turn_speaker(t) or "").lower() in PATIENT_SPEAKERS), turns[0]
        )
        text = f"{len(turns)} turns · {turn_speaker(first)}: {turn_text(first)}"
    else:
        text = next(
            (sample[key] for key in PREFERRED_TEXT if isinstance(sample.get(key), str)), None
        ) or next(
            (value for value in sample.values() if isinstance(value, str) and len(value) >= 40),
            "",
        )
    return shorten(" · ".join([*topic, text]) if text else " · ".join(topic), width)


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def list_samples(
    warehouse: Warehouse, where: QueueFilter, limit: int | None = None
) -> list[dict[str, Any]]:
    """The reviewable samples matching a filter, oldest first, each with its summary."""
    where.check()
    rows = warehouse.select(
        "samples_listing", **where.params(), state=where.state, limit=-1 if limit is None else limit
    )
    for row in rows:
        row["summary"] = summarize(json.loads(row.pop("sample_json") or "null"))
    return rows


def queue_entries(warehouse: Warehouse, where: QueueFilter) -> list[dict[str, Any]]:
    """Every sample of the queue under the filter's recipe, label and gate (all review states),
    in order: (accepted_id, sample_id, review_state). Progress and position come from it."""
    where.check()
    return warehouse.select("review_queue_entries", **where.params())


def queue_rows(warehouse: Warehouse, sample_ids: list[str]) -> list[dict[str, Any]]:
    """The queue's rows for some samples, in queue order, with the sample and its summary."""
    rows = warehouse.select("review_queue_rows", sample_ids=json.dumps(sample_ids))
    for row in rows:
        row["sample"] = json.loads(row.pop("sample_json") or "null")
        row["summary"] = summarize(row["sample"])
    return rows
