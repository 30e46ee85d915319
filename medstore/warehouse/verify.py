"""`verify`: recompute the hash chain and every blob hash, and say what was found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from medstore.warehouse import queries
from medstore.warehouse.hashing import content_hash
from medstore.warehouse.store import EVENT_COLUMNS, link_hash

if TYPE_CHECKING:
    from medstore.warehouse.store import Warehouse


@dataclass
class VerifyReport:
    events: int
    blobs: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_warehouse(warehouse: Warehouse) -> VerifyReport:
    """Recompute the hash chain and every blob hash; report each break found."""
    conn = warehouse.conn
    problems: list[str] = []
    prev_hash = "genesis"
    count = 0
    last_id = 0
    for row in queries.iterate(conn, "chain_rows"):
        fields = tuple(row[name] for name in EVENT_COLUMNS)
        if row["prev_hash"] != prev_hash:
            problems.append(
                f"event id {row['id']}: chain broken (prev_hash does not match the row before:"
                " a row was removed or reordered)"
            )
        if link_hash(row["prev_hash"], fields) != row["hash"]:
            problems.append(f"event id {row['id']} ({row['event_id']}): contents were edited")
        prev_hash = row["hash"]
        count += 1
        last_id = row["id"]
    head = queries.select_one(conn, "chain_head")
    if head is not None and (head["last_id"], head["last_hash"], head["event_count"]) != (
        last_id,
        prev_hash,
        count,
    ):
        problems.append(
            f"chain head says {head['event_count']} events ending at id {head['last_id']}, the"
            f" log has {count} ending at id {last_id}: events were removed from the end"
        )
    blobs = 0
    for row in queries.iterate(conn, "all_blobs"):
        blobs += 1
        if content_hash(row["content"]) != row["hash"]:
            problems.append(f"blob {row['hash'][:20]}…: contents do not match their hash")
    return VerifyReport(events=count, blobs=blobs, problems=problems)
