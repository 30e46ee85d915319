"""Full-text search over raw teacher outputs: a derived FTS5 table kept next to the log.

``raw_output_fts`` is *derived*, not part of the log: one row per ``llm_response`` event (rowid =
the event's id), holding the raw output text from ``blobs``. It is the one table ``serve``
writes besides review events, it is mutable, ``verify`` ignores it, and dropping it loses
nothing: the next ``serve`` rebuilds it from the log. It lives inside the warehouse (rather than
in a second file) so that one Datasette database can join hits to events and samples.

Cache replays are not indexed: their text is the response they replay, which already is.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from medstore.warehouse.store import connect

log = logging.getLogger(__name__)

FTS_TABLE = "raw_output_fts"
# Rows per transaction while catching up, so a run writing to the same file waits briefly.
CHUNK_EVENTS = 20_000


def ensure_search_index(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"""
        CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
            raw_output,
            recipe UNINDEXED,
            stage UNINDEXED,
            task_key UNINDEXED,
            event_id UNINDEXED,
            tokenize = 'porter unicode61'
        )
        """
    )


def refresh_search_index(db_path: str | Path) -> int:
    """Index the raw outputs of responses logged since the last refresh; returns rows added.

    Incremental by event id: ids only grow and the log commits one transaction at a time, so
    everything after the last indexed response is new (the short tail of non-response events
    after it is looked at again next time, which is cheap).
    """
    conn = connect(db_path)
    try:
        ensure_search_index(conn)
        added = 0
        start = last_indexed_id(conn)
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        while start < newest:
            stop = min(newest, start + CHUNK_EVENTS)
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    f"""
                    INSERT INTO {FTS_TABLE} (rowid, raw_output, recipe, stage, task_key, event_id)
                    SELECT e.id, b.content, e.recipe, e.stage, e.task_key, e.event_id
                    FROM events e
                    JOIN blobs b ON b.hash = json_extract(e.payload_json, '$.raw_output_blob')
                    WHERE e.id > ? AND e.id <= ? AND e.event_type = 'llm_response'
                    """,
                    (start, stop),
                )
                added += cursor.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            start = stop
        return added
    finally:
        conn.close()


def last_indexed_id(conn: sqlite3.Connection) -> int:
    # ORDER BY rowid DESC LIMIT 1 is answered from the FTS index; max(rowid) would scan it.
    row = conn.execute(f"SELECT rowid FROM {FTS_TABLE} ORDER BY rowid DESC LIMIT 1").fetchone()
    return row[0] if row else 0
