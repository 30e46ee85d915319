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

from medstore.warehouse import queries
from medstore.warehouse.store import connect

log = logging.getLogger(__name__)

FTS_TABLE = "raw_output_fts"  # the name sql/queries/serve.sql creates and fills
# Rows per transaction while catching up, so a run writing to the same file waits briefly.
CHUNK_EVENTS = 20_000


def ensure_search_index(conn: sqlite3.Connection) -> None:
    queries.execute(conn, "serve_create_search_index")


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
        newest = queries.select_value(conn, "serve_newest_event_id")
        while start < newest:
            stop = min(newest, start + CHUNK_EVENTS)
            conn.execute("BEGIN IMMEDIATE")
            try:
                added += queries.execute(conn, "serve_index_raw_outputs", start=start, stop=stop)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            start = stop
        return added
    finally:
        conn.close()


def last_indexed_id(conn: sqlite3.Connection) -> int:
    return queries.select_value(conn, "serve_last_indexed_id") or 0
