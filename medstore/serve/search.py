"""Full-text search over raw teacher outputs and samples: derived FTS5 tables kept next to the log.

``raw_output_fts`` holds one row per ``llm_response`` event (rowid = the event's id) with the raw
output text from ``blobs``; ``sample_fts`` one row per ``sample_accepted`` event with the text of
every string in the sample. Both are *derived*, not part of the log: with review events they
are all ``serve`` writes, they are mutable, ``verify`` ignores them, and dropping them loses
nothing: the next ``serve`` rebuilds them from the log. They live inside the warehouse (rather
than in a second file) so that one Datasette database can join hits to events and samples.

Cache replays are not indexed: their text is the response they replay, which already is.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from medstore.warehouse import queries
from medstore.warehouse.store import connect

log = logging.getLogger(__name__)

FTS_TABLE = "raw_output_fts"  # the names sql/queries/serve.sql creates and fills
SAMPLE_FTS_TABLE = "sample_fts"
# Per index: the query giving its last indexed log id, and the one adding a range of ids.
INDEXES = (
    ("serve_last_indexed_id", "serve_index_raw_outputs"),
    ("serve_last_indexed_sample_id", "serve_index_samples"),
)
# Rows per transaction while catching up, so a run writing to the same file waits briefly.
CHUNK_EVENTS = 20_000


def ensure_search_index(conn: sqlite3.Connection) -> None:
    queries.execute(conn, "serve_create_search_index")
    queries.execute(conn, "serve_create_sample_index")


def refresh_search_index(db_path: str | Path) -> int:
    """Index the raw outputs and samples logged since the last refresh; returns rows added.

    Incremental by event id: ids only grow and the log commits one transaction at a time, so
    everything after the last indexed event of an index is new (the short tail of other events
    after it is looked at again next time, which is cheap).
    """
    conn = connect(db_path)
    try:
        ensure_search_index(conn)
        newest = queries.select_value(conn, "serve_newest_event_id")
        return sum(catch_up(conn, last, insert, newest) for last, insert in INDEXES)
    finally:
        conn.close()


def catch_up(conn: sqlite3.Connection, last_query: str, insert_query: str, newest: int) -> int:
    added = 0
    start = queries.select_value(conn, last_query) or 0
    while start < newest:
        stop = min(newest, start + CHUNK_EVENTS)
        conn.execute("BEGIN IMMEDIATE")
        try:
            added += queries.execute(conn, insert_query, start=start, stop=stop)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        start = stop
    return added
