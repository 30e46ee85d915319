"""The run's progress bar: it moves on every stage call, not only when a whole task ends, and
shows tokens per second.

The bar counts tasks. Each answered (or replayed) call of a task moves it by a share of one
task (one over the recipe's number of stages, never past the task's end); the rest comes when
the task ends. It watches the records the task contexts hand to the writer, so the code that
makes the calls knows nothing of it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from tqdm import tqdm

from medstore.warehouse.events import EventRecord

CALL_EVENTS = ("llm_response", "cache_replay")
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} tasks [{elapsed}<{remaining}{postfix}]"
)


class RunProgress:
    """A tqdm bar over a run's tasks, advanced per stage call."""

    def __init__(
        self,
        name: str,
        tasks: int,
        stages: int,
        *,
        enabled: bool,
        counts: Counter,
        cost: Callable[[], float],
    ) -> None:
        self.bar = tqdm(
            total=tasks,
            desc=name,
            unit="task",
            disable=not enabled or None,
            dynamic_ncols=True,
            bar_format=BAR_FORMAT,
        )
        self.share = 1.0 / max(stages, 1)
        self.moved: Counter = Counter()  # per task key: how far its calls moved the bar
        self.counts = counts  # the runner's outcome counts
        self.cost = cost
        self.calls = 0
        self.tokens = 0
        self.started = time.monotonic()

    def watch(self, writer: Any) -> WatchedWriter:
        return WatchedWriter(writer, self)

    def seen(self, records: list[EventRecord]) -> None:
        """Records on their way to the writer: each call moves its task's share."""
        if self.bar.disable:  # --no-progress: nothing to draw, nothing to count
            return
        for record in records:
            if record.event_type not in CALL_EVENTS:
                continue
            self.calls += 1
            self.tokens += (record.payload.get("input_tokens") or 0) + (
                record.payload.get("output_tokens") or 0
            )
            key = record.envelope.task_key
            step = max(0.0, min(self.share, 0.95 - self.moved[key]))  # a task ends when it ends
            self.moved[key] += step
            self.show_figures()
            self.bar.update(step)

    def task_done(self, task_key: str) -> None:
        self.show_figures()
        self.bar.update(1 - self.moved.pop(task_key, 0.0))

    def show_figures(self) -> None:
        if self.bar.disable:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        figures = {
            "ok": self.counts["accepted"],
            "rejected": self.counts["rejected"],
            "failed": self.counts["failed"],
            "calls": self.calls,
            "tok/s": f"{self.tokens / elapsed:,.0f}",
            "cost": f"${self.cost():.4f}",
        }
        self.bar.set_postfix(figures, refresh=False)  # shown by the update that follows

    def close(self) -> None:
        self.bar.close()


class WatchedWriter:
    """The run's writer, with the progress bar looking at what goes in."""

    def __init__(self, writer: Any, progress: RunProgress) -> None:
        self.writer = writer
        self.progress = progress

    def submit(self, records: list[EventRecord]) -> Future:
        future = self.writer.submit(records)
        self.progress.seen(records)
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self.writer, name)
