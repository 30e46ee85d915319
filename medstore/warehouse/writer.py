"""The one writer of a process: a thread that drains a queue and commits each batch in one
transaction, and decides task claims in the same transactions.

``submit`` returns a future that resolves once the records are committed, so callers can count
a sample as accepted only when it is durable. ``claim`` asks for a task: the answer is decided
inside ``BEGIN IMMEDIATE``, which SQLite gives to one process at a time, so two runs sharing a
warehouse can never both hold the same task.
"""

from __future__ import annotations

import os
import queue
import socket
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from medstore.warehouse import queries
from medstore.warehouse.events import EventRecord
from medstore.warehouse.hashing import utc_now
from medstore.warehouse.store import (
    LogAppend,
    WarehouseError,
    connect,
    describe_sqlite_error,
    transaction,
)

GRANTED, HELD, FINISHED = "granted", "held", "finished"
# After the first item of a batch arrives, the writer waits this long for more before it writes:
# a commit rewrites every index page the batch touched, so a run's 60-odd concurrent tasks
# committing together instead of a few at a time cut the writer's CPU by about a fifth (and the
# event loop's wake-ups with it), for 3 ms more before a claim is answered or a task counted.
# Not longer: a process killed loses its requests in flight and the answers still waiting here,
# paid for and asked again on resume. A 20 ms window cut the writer's CPU by another quarter at
# concurrency 64 but, in test_concurrent_runs, let a stalled run lose 4 paid answers, not 2.
GATHER_S = 0.003


@dataclass
class Appends:
    records: list[EventRecord]
    future: Future


@dataclass
class Claim:
    """A request to hold a task; ``record`` is its task_claimed event, written if granted."""

    record: EventRecord
    owner: str
    future: Future
    # `run --redo`: a task finished under another validator version is to be done again.
    redo_version: str | None = None

    def decide(self, conn: sqlite3.Connection) -> str:
        env = self.record.envelope
        state = queries.select_one(conn, "lease_state", recipe=env.recipe, task_key=env.task_key)
        if state["head_type"] in ("sample_accepted", "sample_rejected") and (
            self.redo_version is None or state["head_version"] == self.redo_version
        ):
            return FINISHED
        held_by_other = (
            state["owner"] is not None
            and state["owner"] != self.owner
            and not state["closed"]
            and state["expires_utc"] > utc_now()
            and not holder_is_gone(state["host"], state["pid"])
        )
        return HELD if held_by_other else GRANTED


def holder_is_gone(host: str | None, pid: int | None) -> bool:
    """A claim made on this machine by a process that no longer exists (killed, crashed): it
    need not be waited out."""
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


Item = Appends | Claim


class BatchWriter:
    def __init__(
        self, path: str | Path, *, max_batch: int = 2000, gather_s: float = GATHER_S
    ) -> None:
        self.path = str(path)
        self.max_batch = max_batch
        self.gather_s = gather_s
        # SimpleQueue (C): a put costs a fraction of queue.Queue's lock and condition dance,
        # and the event loop puts three times per task.
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="medstore-writer", daemon=True)
        self._error: BaseException | None = None
        self.committed = 0
        self.batches = 0
        self._thread.start()

    def submit(self, records: list[EventRecord]) -> Future:
        return self._put(Appends(records, Future()))

    def claim(self, record: EventRecord, owner: str, *, redo_version: str | None = None) -> Future:
        """Hold the record's task for ``owner`` (a new claim or a renewal): resolves to
        "granted", "held" (another run holds it) or "finished" (nothing left to do)."""
        return self._put(Claim(record, owner, Future(), redo_version))

    def _put(self, item: Item) -> Future:
        if self._error is not None:
            item.future.set_exception(WarehouseError(f"writer stopped: {self._error}"))
        else:
            self._queue.put(item)
        return item.future

    def _loop(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if self.gather_s:
                    time.sleep(self.gather_s)
                batch, stop = self._gather(item)
                self._write(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _gather(self, first: Item) -> tuple[list[Item], bool]:
        """What else is queued, up to max_batch records; True once close() was asked for."""
        batch = [first]
        size = len(first.records) if isinstance(first, Appends) else 1
        while size < self.max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if more is None:
                return batch, True
            batch.append(more)
            size += len(more.records) if isinstance(more, Appends) else 1
        return batch, False

    def _write(self, conn: sqlite3.Connection, batch: list[Item]) -> None:
        if self._error is not None:  # after a failure nothing is written: order stays a prefix
            for item in batch:
                item.future.set_exception(WarehouseError(f"writer stopped: {self._error}"))
            return
        try:
            with transaction(conn):
                answers = self._apply(conn, batch)
        except BaseException as exc:  # disk full, read-only file: fail every waiter, stop writing
            self._error = exc
            for item in batch:
                item.future.set_exception(WarehouseError(describe_sqlite_error(exc, self.path)))
            self._fail_pending(exc)
            return
        self.batches += 1
        for item, answer in zip(batch, answers, strict=True):
            item.future.set_result(answer)

    def _apply(self, conn: sqlite3.Connection, batch: list[Item]) -> list[object]:
        """Write the batch in order, as one stretch of the chain; each claim is decided against
        everything before it. Rows are held until a claim's task has some among them (the
        claim's decision reads only its own task's events), then written: most batches are
        one insert per table and one head update, however many claims they hold."""
        answers: list[object] = []
        log = LogAppend(conn)
        unwritten: set[tuple[str | None, str | None]] = set()  # tasks with rows held back
        for item in batch:
            if isinstance(item, Appends):
                log.add(item.records)
                unwritten.update((r.envelope.recipe, r.envelope.task_key) for r in item.records)
                answers.append(len(item.records))
                continue
            task = (item.record.envelope.recipe, item.record.envelope.task_key)
            if task in unwritten:
                log.flush()
                unwritten.clear()
            answer = item.decide(conn)
            if answer == GRANTED:
                log.add([item.record])
                unwritten.add(task)
            answers.append(answer)
        log.finish()
        self.committed += log.count - log.head["event_count"]
        return answers

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.future.set_exception(WarehouseError(describe_sqlite_error(exc, self.path)))

    def close(self) -> None:
        """Commit everything queued, then stop."""
        self._queue.put(None)
        self._thread.join()
