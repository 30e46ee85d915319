"""Merge warehouses: union the logs of sharded workers by event id into one warehouse.

Each source's hash chain is verified first; events the target lacks are appended (re-chained
in the target), in an order that depends only on the set of sources, never on argument order:
sources are interleaved by (created_utc, event_id) while each keeps its own order, so a task's
events stay in sequence and every view (task_state, samples, provenance) reads as one run's.
Merging the same source again adds nothing.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.warehouse import queries
from medstore.warehouse.chain import link_hash
from medstore.warehouse.events import Envelope, WarehouseMerged, make_record
from medstore.warehouse.hashing import canonical_json
from medstore.warehouse.projections import project
from medstore.warehouse.store import (
    EVENT_COLUMNS,
    Warehouse,
    WarehouseError,
    describe_sqlite_error,
    set_head,
)

INSERT_CHUNK = 5000


class MergeError(Exception):
    """A merge refused before anything was written, with a one-line reason."""


@dataclass
class MergeReport:
    into: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    added_events: int = 0
    added_blobs: int = 0


def merge_warehouses(sources: list[str], into: str) -> MergeReport:
    """Union ``sources`` into ``into`` (created if missing) in one transaction."""
    target = Path(into).resolve()
    for source in sources:
        if not Path(source).exists():
            raise MergeError(f"{source}: no such warehouse")
        if Path(source).resolve() == target:
            raise MergeError(f"{source}: is the merge target itself")
    heads = [verified_head(source) for source in sources]
    Warehouse(into).close()  # create and migrate the target before attaching
    conn = sqlite3.connect(target.as_uri(), uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    try:
        return merge_into(conn, sources, heads, str(into))
    except sqlite3.DatabaseError as exc:
        raise WarehouseError(describe_sqlite_error(exc, str(into))) from exc
    finally:
        conn.close()


def verified_head(source: str) -> dict[str, Any]:
    try:
        warehouse = Warehouse(source, readonly=True)
    except WarehouseError as exc:
        raise MergeError(str(exc)) from exc
    try:
        report = warehouse.verify()
        head = warehouse.select_one("chain_head")["last_hash"]
    finally:
        warehouse.close()
    if not report.ok:
        raise MergeError(f"{source}: hash chain does not verify ({report.problems[0]})")
    return {"path": source, "events": report.events, "head_hash": head}


def merge_into(
    conn: sqlite3.Connection, sources: list[str], heads: list[dict[str, Any]], into: str
) -> MergeReport:
    report = MergeReport(into=into)
    aliases = [f"source_{number}" for number in range(len(sources))]
    for alias, source in zip(aliases, sources, strict=True):
        conn.execute(
            f"ATTACH DATABASE ? AS {alias}", (Path(source).resolve().as_uri() + "?mode=ro",)
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        report.added_blobs = copy_blobs(conn, aliases)
        target_head = queries.select_one(conn, "chain_head")
        chain = Chain(conn, target_head["last_hash"])
        added_by_source = chain.append_new_events(aliases)
        report.added_events = sum(added_by_source)
        report.sources = [
            {**head, "added_events": added}
            for head, added in zip(heads, added_by_source, strict=True)
        ]
        if report.added_events:
            # The merge itself goes into the log, so an audit can tell where events came from.
            chain.add(merge_event(report))
        chain.flush()
        set_head(conn, target_head, chain.prev_hash, target_head["event_count"] + chain.added)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return report


def copy_blobs(conn: sqlite3.Connection, aliases: list[str]) -> int:
    """Every source's blobs the target lacks; returns how many were added."""
    before = conn.total_changes
    for alias in aliases:
        conn.execute(
            f"INSERT OR IGNORE INTO main.blobs SELECT hash, content, size FROM {alias}.blobs"
        )
    return conn.total_changes - before


class Chain:
    """Events being appended to the target's hash chain, inserted (and projected) in chunks."""

    def __init__(self, conn: sqlite3.Connection, prev_hash: str) -> None:
        self.conn = conn
        self.prev_hash = prev_hash
        self.rows: list[tuple[Any, ...]] = []
        self.added = 0

    def add(self, fields: tuple[Any, ...]) -> None:
        this_hash = link_hash(self.prev_hash, fields)
        self.rows.append((*fields, self.prev_hash, this_hash))
        self.prev_hash = this_hash
        self.added += 1
        if len(self.rows) >= INSERT_CHUNK:
            self.flush()

    def flush(self) -> None:
        insert_rows(self.conn, self.rows)
        self.rows = []

    def append_new_events(self, aliases: list[str]) -> list[int]:
        """Interleave the sources' new events (see the module docstring); the count per source."""
        added_by_source = [0] * len(aliases)
        streams = [new_events(self.conn, alias, number) for number, alias in enumerate(aliases)]
        seen: set[str] = set()
        for _, _, number, fields in heapq.merge(*streams):
            if fields[0] in seen:  # the same event in two sources
                continue
            seen.add(fields[0])
            added_by_source[number] += 1
            self.add(fields)
        return added_by_source


def merge_event(report: MergeReport) -> tuple[Any, ...]:
    """The row fields of the warehouse_merged event that records this merge."""
    record = make_record(
        WarehouseMerged(
            sources=report.sources,
            added_events=report.added_events,
            added_blobs=report.added_blobs,
        ),
        Envelope(),
    )
    return (
        record.event_id,
        *(None,) * 5,  # run, recipe, task, stage, attempt: a merge belongs to none
        record.event_type,
        None,
        canonical_json(record.payload),
        record.created_utc,
    )


def new_events(
    conn: sqlite3.Connection, alias: str, number: int
) -> Iterator[tuple[str, str, int, tuple[Any, ...]]]:
    """The source's events the target lacks, in the source's order, keyed for the interleave."""
    columns = ", ".join(f"s.{name}" for name in EVENT_COLUMNS)
    cursor = conn.execute(
        f"SELECT {columns} FROM {alias}.events s"
        " WHERE NOT EXISTS (SELECT 1 FROM main.events m WHERE m.event_id = s.event_id)"
        " ORDER BY s.id"
    )
    for row in cursor:
        yield row[-1], row[0], number, tuple(row)


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        queries.execute_many(conn, "insert_events", rows)  # into main.events, the target's
        project(conn, rows)
