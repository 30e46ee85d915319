"""Tamper cases `verify` must name: edited, removed, forged and rewritten history, an anchored head
that moved, a re-hashed forgery under a signed chain, and derived tables that the log does not
back (which `verify --repair` rebuilds). Each case edits a real SQLite file as an attacker with
write access would, with the append-only triggers dropped."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.chain import KEY_ENV, link_hash
from medstore.warehouse.derived import rebuild_all
from medstore.warehouse.store import EVENT_COLUMNS, Warehouse

from .test_serve_sample_index import event_for

HISTORY = [
    ("accept", "t1", "a"),
    ("accept", "t2", "b"),
    ("review", "t2", ("b", "reject")),
    ("accept", "t3", "c"),
    ("reject", "t1", ""),
    ("accept", "t4", "d"),
]


def build(db: Path) -> None:
    with Warehouse(db) as warehouse:
        warehouse.append([event_for(*one) for one in HISTORY])


def verify(db: Path, *extra: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["verify", "--db", str(db), *extra], env=env)


def tamper(db: Path, *statements: tuple[str, tuple]) -> None:
    """Run SQL as someone holding the file: the triggers go first."""
    conn = sqlite3.connect(db)
    for trigger in ("events_no_update", "events_no_delete", "blobs_no_update"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def rewrite_history(db: Path, event_id: int, payload_json: str) -> None:
    """Edit one event, re-hash every link after it, update the head and rebuild the derived
    tables: what a careful forger does. Everything in the file then agrees; only an anchor kept
    elsewhere or a signature can tell."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET payload_json = ? WHERE id = ?", (payload_json, event_id))
    prev = "genesis"
    columns = ", ".join(EVENT_COLUMNS)
    for row in conn.execute(f"SELECT id, {columns} FROM events ORDER BY id").fetchall():
        new_hash = link_hash(prev, tuple(row[name] for name in EVENT_COLUMNS))
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", (prev, new_hash, row["id"])
        )
        prev = new_hash
    conn.execute("UPDATE chain_head SET last_hash = ?", (prev,))
    conn.commit()
    conn.isolation_level = None
    rebuild_all(conn)
    conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    build(path)
    return path


def test_an_intact_warehouse_verifies(db: Path) -> None:
    result = verify(db)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {len(HISTORY)} events")


def test_edited_payload_is_named(db: Path) -> None:
    tamper(
        db, ("UPDATE events SET payload_json = replace(payload_json, 'qa', 'me') WHERE id = 3", ())
    )
    result = verify(db)
    assert result.exit_code == 1
    assert "event id 3 (" in result.output and "contents were edited" in result.output


def test_removed_last_event_is_named(db: Path) -> None:
    tamper(db, ("DELETE FROM events WHERE id = (SELECT max(id) FROM events)", ()))
    output = verify(db).output
    assert f"events were removed from the end: the head says {len(HISTORY)} events" in output


def test_removed_middle_event_breaks_the_chain(db: Path) -> None:
    tamper(db, ("DELETE FROM events WHERE id = 2", ()))
    assert "event id 3: chain broken" in verify(db).output


def test_an_event_added_outside_the_writer_is_forged(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    last = conn.execute("SELECT * FROM events ORDER BY id DESC LIMIT 1").fetchone()
    fields = ("forged-id", *(last[name] for name in EVENT_COLUMNS[1:]))
    conn.execute(
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}, prev_hash, hash) VALUES "
        f"({', '.join('?' * (len(EVENT_COLUMNS) + 2))})",
        (*fields, last["hash"], link_hash(last["hash"], fields)),
    )
    conn.commit()
    conn.close()
    result = verify(db)
    assert result.exit_code == 1
    assert "1 event(s) after the recorded head" in result.output and "(forged)" in result.output


def test_a_rewritten_history_fails_against_its_anchor(db: Path) -> None:
    anchor = verify(db, "--anchor").output.strip()
    assert anchor.startswith("b2:") and len(anchor) == 67
    assert verify(db, "--expect-head", anchor).exit_code == 0
    with Warehouse(db) as warehouse:  # history grows: the anchor stays in the chain
        warehouse.append([event_for("accept", "t5", "e")])
    grown = verify(db, "--expect-head", anchor)
    assert grown.exit_code == 0 and "grown by 1 id(s)" in grown.output
    forged_payload = json.dumps({"reason": "fine", "errors": []}, separators=(",", ":"))
    rewrite_history(db, 5, forged_payload)
    assert verify(db).exit_code == 0  # chain and head agree: nothing else can tell
    result = verify(db, "--expect-head", anchor)
    assert result.exit_code == 1
    assert f"head moved: the anchored head {anchor[:20]}… is not in the chain" in result.output


def test_a_signed_chain_catches_a_rehashed_forgery(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "signed.db"
    monkeypatch.setenv(KEY_ENV, "a key kept elsewhere")
    build(db)
    signed = verify(db)
    assert signed.exit_code == 0 and "signature matches" in signed.output
    rewrite_history(db, 5, json.dumps({"reason": "fine", "errors": []}, separators=(",", ":")))
    result = verify(db)
    assert result.exit_code == 1
    assert "signature does not match: history was rewritten and re-hashed" in result.output
    monkeypatch.setenv(KEY_ENV, "another key")
    assert "signature does not match" in verify(db).output
    monkeypatch.delenv(KEY_ENV)
    unchecked = verify(db)
    assert unchecked.exit_code == 0 and f"set ${KEY_ENV} to check" in unchecked.output


def test_appending_to_a_signed_chain_needs_the_key(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "signed.db"
    monkeypatch.setenv(KEY_ENV, "k")
    build(db)
    monkeypatch.delenv(KEY_ENV)
    with Warehouse(db) as warehouse, pytest.raises(Exception, match="chain is signed: set"):
        warehouse.append([event_for("accept", "t9", "z")])
    monkeypatch.setenv(KEY_ENV, "k")
    assert verify(db).exit_code == 0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE sample_index SET label = 'x' WHERE sample_id = 's-t3-c'",
         "sample_index (accepted_id=4): label is 'x', not 'c'; the log says otherwise"),
        ("DELETE FROM run_totals", "run_totals (run_id='r'): missing, though the log derives it"),
        ("INSERT INTO answered_requests VALUES ('b2:nope')",
         "answered_requests (request_hash='b2:nope'): a row the log does not derive"),
        ("UPDATE run_failures SET n = n + 5",
         "run_failures (run_id='r', reason='invalid'): n is 6, not 1"),
    ],
)  # fmt: skip
def test_a_derived_table_the_log_does_not_back_is_named_and_repaired(
    db: Path, statement: str, message: str
) -> None:
    tamper(db, (statement, ()))
    result = verify(db)
    assert result.exit_code == 1
    assert message in result.output
    repaired = verify(db, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert verify(db).exit_code == 0


def test_an_edited_sample_index_no_longer_reaches_an_export(db: Path, tmp_path: Path) -> None:
    tamper(db, ("UPDATE sample_index SET label = 'forged' WHERE sample_id = 's-t3-c'", ()))
    assert "label is 'forged', not 'c'" in verify(db).output
    assert verify(db, "--repair").exit_code == 0
    with Warehouse(db) as warehouse:
        labels = {row["label"] for row in warehouse.query("SELECT label FROM samples")}
    assert "forged" not in labels and "c" in labels
