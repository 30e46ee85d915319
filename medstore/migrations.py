"""Numbered schema migrations. Applied in order at every entry point; never edit one once released.

Each migration is a function ``mNNN_name(conn)``; its docstring says why it exists.
The views are not migrations: they live in ``sql/views`` and are recreated on open, since
they hold no data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .hashing import utc_now

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_event_log(conn: sqlite3.Connection) -> None:
    """The append-only event log, content-addressed blobs, and the head of the hash chain.

    `chain_head` is the one mutable table: it records the last link so that `verify` notices a
    removed final row, which the chain alone cannot show.
    """
    run_script(
        conn,
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            run_id TEXT,
            recipe TEXT,
            task_key TEXT,
            stage TEXT,
            attempt INTEGER,
            event_type TEXT NOT NULL,
            parent_event_id TEXT,
            payload_json TEXT NOT NULL,
            created_utc TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TABLE blobs (
            hash TEXT PRIMARY KEY,
            content TEXT NOT NULL,
            size INTEGER NOT NULL
        );
        CREATE TABLE chain_head (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            last_id INTEGER NOT NULL,
            last_hash TEXT NOT NULL,
            event_count INTEGER NOT NULL
        );
        INSERT INTO chain_head VALUES (1, 0, 'genesis', 0);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;
        CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
            BEGIN SELECT RAISE(ABORT, 'blobs are immutable: UPDATE refused'); END;
        CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
            BEGIN SELECT RAISE(ABORT, 'blobs are immutable: DELETE refused'); END;
        """,
    )


@migration
def m002_lookup_indexes(conn: sqlite3.Connection) -> None:
    """Indexes behind resume (per task), the request cache, sample lookups and per-run summaries."""
    run_script(
        conn,
        """
        CREATE INDEX events_task ON events(recipe, task_key, id);
        CREATE INDEX events_type ON events(event_type, recipe);
        CREATE INDEX events_run ON events(run_id, event_type);
        CREATE INDEX events_parent ON events(parent_event_id) WHERE parent_event_id IS NOT NULL;
        CREATE INDEX events_request_hash
            ON events(json_extract(payload_json, '$.request_hash'))
            WHERE event_type IN ('llm_response', 'cache_replay');
        CREATE INDEX events_sample_id
            ON events(json_extract(payload_json, '$.sample_id'))
            WHERE event_type IN ('sample_accepted', 'review_verdict');
        """,
    )


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: unlike executescript, this keeps the open transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement.strip()[:80]}")


def ensure_migrations_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)"
    )


def applied(conn: sqlite3.Connection) -> set[str]:
    ensure_migrations_table(conn)
    return {row[0] for row in conn.execute("SELECT name FROM _migrations")}


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the names applied."""
    done = applied(conn)
    newly: list[str] = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if fn.__name__ not in applied(conn):  # another process may have won the race
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                    (fn.__name__, utc_now()),
                )
                newly.append(fn.__name__)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return newly
