"""What a reader hands the runner: tasks to do, source records skipped (with why), and the one
error a source that cannot be read raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SourceError(Exception):
    """The source cannot be read (missing file, wrong format): one line naming file and field."""


@dataclass
class Task:
    key: str
    source_id: str
    record: dict[str, Any]


@dataclass
class Skip:
    """A source record that will not become a task, and why (counted in status)."""

    source_id: str
    reason: str
    detail: str | None = None
