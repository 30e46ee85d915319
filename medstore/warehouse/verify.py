"""`verify`: recompute the hash chain, the head's signature, every blob hash and every derived
table, and say what was found: edited, removed, added (forged), rewritten, head moved."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medstore.warehouse import queries
from medstore.warehouse.chain import GENESIS, KEY_ENV, chain_key, link_hash, sign_head
from medstore.warehouse.derived import DERIVED_TABLES, compare
from medstore.warehouse.hashing import content_hash
from medstore.warehouse.store import EVENT_COLUMNS

if TYPE_CHECKING:
    from medstore.warehouse.store import Warehouse


@dataclass
class VerifyReport:
    events: int
    blobs: int
    problems: list[str]
    head: dict[str, Any] = field(default_factory=dict)  # last_id, last_hash, event_count
    notes: list[str] = field(default_factory=list)  # facts that are not problems

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ChainScan:
    problems: list[str] = field(default_factory=list)
    count: int = 0
    last_id: int = 0
    last_hash: str = GENESIS
    anchor_id: int | None = None  # where --expect-head's hash was found


def verify_warehouse(warehouse: Warehouse, *, expect_head: str | None = None) -> VerifyReport:
    """Check everything a reader relies on; report each problem found, in one line each."""
    conn = warehouse.conn
    scan = scan_chain(conn, expect_head)
    problems = list(scan.problems)
    head = queries.select_one(conn, "chain_head") or {}
    problems += head_problems(head, scan)
    notes = []
    signature_problem, signature_note = check_signature(head)
    problems += signature_problem
    notes += signature_note
    if expect_head is not None:
        problems += anchor_problems(expect_head, scan, notes)
    blobs, blob_problems = check_blobs(conn)
    problems += blob_problems
    for table in DERIVED_TABLES:
        differences, total = compare(conn, table)
        problems += [str(difference) for difference in differences]
        if total > len(differences):
            problems.append(f"{table}: {total - len(differences)} more differences")
    return VerifyReport(
        events=scan.count,
        blobs=blobs,
        problems=problems,
        head={"last_id": scan.last_id, "last_hash": scan.last_hash, "event_count": scan.count},
        notes=notes,
    )


def scan_chain(conn: Any, expect_head: str | None) -> ChainScan:
    scan = ChainScan()
    for row in queries.iterate(conn, "chain_rows"):
        fields = tuple(row[name] for name in EVENT_COLUMNS)
        if row["prev_hash"] != scan.last_hash:
            scan.problems.append(
                f"event id {row['id']}: chain broken (prev_hash does not match the row before:"
                " a row was removed or reordered)"
            )
        if link_hash(row["prev_hash"], fields) != row["hash"]:
            scan.problems.append(f"event id {row['id']} ({row['event_id']}): contents were edited")
        if row["hash"] == expect_head:
            scan.anchor_id = row["id"]
        scan.last_hash = row["hash"]
        scan.count += 1
        scan.last_id = row["id"]
    return scan


def head_problems(head: dict[str, Any], scan: ChainScan) -> list[str]:
    """The recorded head against the chain as it is: removed, added or rewritten events."""
    if not head:
        return ["chain_head is missing: this warehouse cannot show removed events"]
    recorded = (head["last_id"], head["last_hash"], head["event_count"])
    if recorded == (scan.last_id, scan.last_hash, scan.count):
        return []
    if scan.count < head["event_count"]:
        return [
            f"events were removed from the end: the head says {head['event_count']} events "
            f"ending at id {head['last_id']}, the log has {scan.count} ending at id {scan.last_id}"
        ]
    if scan.count > head["event_count"]:
        return [
            f"{scan.count - head['event_count']} event(s) after the recorded head (id "
            f"{head['last_id']}) were added outside medstore's writer (forged)"
        ]
    return [
        f"the chain was rewritten: its last link is {scan.last_hash[:20]}…, the head recorded "
        f"{head['last_hash'][:20]}…"
    ]


def check_signature(head: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes) about the head's HMAC signature."""
    signature = head.get("signature")
    key = chain_key()
    if key is None:
        note = f"the chain head is signed: set ${KEY_ENV} to check the signature"
        return [], [note] if signature else []
    if signature is None:
        return [f"the chain head is not signed (written without ${KEY_ENV})"], []
    expected = sign_head(key, head["last_id"], head["last_hash"], head["event_count"])
    if not hmac.compare_digest(signature, expected):
        return [
            "the chain head's signature does not match: history was rewritten and re-hashed "
            f"without the key (forged), or ${KEY_ENV} is not the key it was signed with"
        ], []
    return [], ["the chain head's signature matches"]


def anchor_problems(expect_head: str, scan: ChainScan, notes: list[str]) -> list[str]:
    if scan.anchor_id is None:
        return [
            f"head moved: the anchored head {expect_head[:20]}… is not in the chain, so the "
            "history it covered was rewritten"
        ]
    notes.append(
        f"the anchored head is event id {scan.anchor_id}; the log has grown by "
        f"{scan.last_id - scan.anchor_id} id(s) since"
    )
    return []


def check_blobs(conn: Any) -> tuple[int, list[str]]:
    count, problems = 0, []
    for row in queries.iterate(conn, "all_blobs"):
        count += 1
        if content_hash(row["content"]) != row["hash"]:
            problems.append(f"blob {row['hash'][:20]}…: contents do not match their hash")
    return count, problems
