"""The derived tables: projections of the log that status, resume, samples and export read.

Each has one rebuild, ``sql/derived/<table>.sql``, which the migration that creates the table
runs and ``rebuild`` runs again on demand; the writer keeps them in step incrementally
(``projections.py``). They hold nothing the events do not: dropping their rows and rebuilding
gives the same tables.
"""

from __future__ import annotations

import sqlite3
from functools import cache

from medstore.resources import resource_dir

DERIVED_TABLES = ("sample_index", "run_totals", "run_failures", "answered_requests")


@cache
def rebuild_sql(table: str) -> str:
    if table not in DERIVED_TABLES:
        raise KeyError(f"{table!r} is not a derived table: {', '.join(DERIVED_TABLES)}")
    return resource_dir("sql").joinpath("derived", f"{table}.sql").read_text(encoding="utf-8")


def rebuild(conn: sqlite3.Connection, table: str) -> None:
    """Empty ``table`` and fill it from the log, inside the caller's transaction."""
    sql = rebuild_sql(table)
    conn.execute(f"DELETE FROM {table}")  # a name from DERIVED_TABLES, never user text
    conn.execute(sql)
