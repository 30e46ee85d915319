"""The writer commits a batch as one stretch of the chain, and a claim in it is decided against
everything before it in the same batch (rows it has not yet written included)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from medstore.warehouse.events import (
    Envelope,
    RunStarted,
    SampleAccepted,
    TaskClaimed,
    TaskStarted,
    make_record,
)
from medstore.warehouse.hashing import utc_after
from medstore.warehouse.store import Warehouse
from medstore.warehouse.writer import FINISHED, GRANTED, HELD


def claim(writer, run_id: str, task_key: str):
    event = TaskClaimed(owner=run_id, expires_utc=utc_after(300), host="h", pid=os.getpid())
    return writer.claim(make_record(event, Envelope(run_id, "consult", task_key)), run_id)


def appends(writer, run_id: str, task_key: str, *events):
    envelope = Envelope(run_id, "consult", task_key)
    return writer.submit([make_record(event, envelope) for event in events])


def test_claims_in_one_batch_see_the_rows_before_them(db_path: Path) -> None:
    with Warehouse(db_path) as warehouse:
        warehouse.append([(RunStarted(command="run", config={}, code_version="x"), Envelope())])
    # Another connection holds the write lock, so whatever is submitted meanwhile is queued and
    # written together once it lets go.
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with Warehouse(db_path) as warehouse:
        writer = warehouse.writer()
        first = appends(
            writer, "run-a", None, RunStarted(command="run", config={}, code_version="x")
        )
        done = appends(
            writer,
            "run-a",
            "consult:t:v1",
            TaskStarted(source_id="t", source_record="{}"),
            SampleAccepted(sample_id="s-1", content_hash="b2:00", sample="{}"),
        )
        finished = claim(writer, "run-b", "consult:t:v1")  # finished by the rows just above
        granted = claim(writer, "run-a", "consult:u:v1")
        held = claim(writer, "run-b", "consult:u:v1")  # run-a's claim just above holds it
        renewed = claim(writer, "run-a", "consult:u:v1")
        blocker.execute("COMMIT")
        blocker.close()
        writer.close()
        assert first.result() == 1 and done.result() == 2
        assert (finished.result(), granted.result(), held.result(), renewed.result()) == (
            FINISHED,
            GRANTED,
            HELD,
            GRANTED,
        )
        claims = warehouse.query(
            "SELECT task_key, json_extract(payload_json, '$.owner') AS owner FROM events"
            " WHERE event_type = 'task_claimed' ORDER BY id"
        )
        assert claims == [
            {"task_key": "consult:u:v1", "owner": "run-a"},
            {"task_key": "consult:u:v1", "owner": "run-a"},
        ]
        assert writer.committed == 5
        report = warehouse.verify()
        assert report.ok, report.problems
        head = warehouse.select_one("chain_head")
        assert head["event_count"] == 6  # the first append, then the writer's five
        states = {r["task_key"]: r["state"] for r in warehouse.query("SELECT * FROM task_heads")}
        assert states == {"consult:t:v1": "accepted"}
