"""The derived tables: projections of the log that status, resume, samples and export read.

Each has one definition, ``sql/derived/<table>.sql``: a SELECT over the events giving the
table's rows. The migration that creates a table fills it with that SELECT, ``rebuild`` does
so again on demand (``verify --repair``), and ``compare`` checks the table against it
(``verify``). The writer keeps the tables in step incrementally (``projections.py``). They hold
nothing the events do not: emptying one and rebuilding it gives the same rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cache

from medstore.resources import resource_dir

DERIVED_TABLES = (
    "sample_index",
    "run_totals",
    "run_failures",
    "answered_requests",
    "task_heads",
    "status_counts",  # after task_heads and sample_index: it counts them
    "sample_counts",  # likewise, sample_index
    "event_counts",
    "task_gate_failures",  # after task_heads: the gates of its rejected tasks
    "gate_rejections",  # after task_gate_failures: it counts them
)
# The columns that name a row of each table, for messages about it.
KEYS = {
    "sample_index": ("accepted_id",),
    "run_totals": ("run_id",),
    "run_failures": ("run_id", "reason"),
    "answered_requests": ("request_hash",),
    "task_heads": ("recipe", "task_key"),
    "status_counts": ("recipe", "what", "reason"),
    "sample_counts": ("recipe", "label", "review_verdict"),
    "event_counts": ("recipe", "event_type"),
    "task_gate_failures": ("recipe", "task_key", "gate"),
    "gate_rejections": ("recipe", "gate"),
}
SHOWN_DIFFERENCES = 20  # per table; the rest are counted


@cache
def derived_select(table: str) -> str:
    """The SELECT whose rows the table must hold, in the table's column order."""
    if table not in DERIVED_TABLES:
        raise KeyError(f"{table!r} is not a derived table: {', '.join(DERIVED_TABLES)}")
    text = resource_dir("sql").joinpath("derived", f"{table}.sql").read_text(encoding="utf-8")
    return text.strip().rstrip(";")


def rebuild(conn: sqlite3.Connection, table: str) -> None:
    """Empty ``table`` and fill it from the log, inside the caller's transaction."""
    conn.execute(f"DELETE FROM {table}")  # a name from DERIVED_TABLES, never user text
    conn.execute(f"INSERT INTO {table} {derived_select(table)}")


def rebuild_all(conn: sqlite3.Connection) -> None:
    """Every derived table from the log, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in DERIVED_TABLES:
            rebuild(conn, table)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@dataclass
class Difference:
    table: str
    key: dict[str, object]
    kind: str  # edited | extra | missing
    detail: str = ""

    def __str__(self) -> str:
        where = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        if self.kind == "edited":
            return f"{self.table} ({where}): {self.detail}; the log says otherwise"
        if self.kind == "extra":
            return f"{self.table} ({where}): a row the log does not derive (added or forged)"
        return f"{self.table} ({where}): missing, though the log derives it (deleted)"


def compare(conn: sqlite3.Connection, table: str) -> tuple[list[Difference], int]:
    """How ``table`` differs from what the log derives: up to SHOWN_DIFFERENCES differences,
    and how many there are in all. Works on a read-only connection (a temp table)."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    types = {row[1]: (row[2] or "").upper() for row in conn.execute(f"PRAGMA table_info({table})")}
    rebuilt = f"temp.rebuilt_{table}"
    conn.execute(f"DROP TABLE IF EXISTS {rebuilt}")
    # The same columns as the table, filled by the table's own definition.
    conn.execute(f"CREATE TEMP TABLE rebuilt_{table} AS SELECT * FROM main.{table} WHERE 0")
    conn.execute(f"INSERT INTO {rebuilt} {derived_select(table)}")
    # Sums of REAL columns are added in a different order by the writer than by SQL.
    shown = ", ".join(f"round({c}, 6)" if types[c] == "REAL" else c for c in columns)
    rebuilt_shown = shown
    # Only the rows that differ come back to Python, so a large, intact table costs two scans.
    ours = {
        tuple(row)
        for row in conn.execute(
            f"SELECT {shown} FROM main.{table} EXCEPT SELECT {rebuilt_shown} FROM {rebuilt}"
        )
    }
    theirs = {
        tuple(row)
        for row in conn.execute(
            f"SELECT {rebuilt_shown} FROM {rebuilt} EXCEPT SELECT {shown} FROM main.{table}"
        )
    }
    conn.execute(f"DROP TABLE {rebuilt}")
    key_index = [columns.index(name) for name in KEYS[table]]

    def key_of(row: tuple) -> tuple:
        return tuple(row[i] for i in key_index)

    derived_by_key = {key_of(row): row for row in theirs}
    differences = []
    for row in sorted(ours, key=lambda r: tuple(map(str, key_of(r)))):
        key = key_of(row)
        other = derived_by_key.pop(key, None)
        named = dict(zip(KEYS[table], key, strict=True))
        if other is None:
            differences.append(Difference(table, named, "extra"))
        else:
            changed = [
                f"{name} is {mine!r}, not {log!r}"
                for name, mine, log in zip(columns, row, other, strict=True)
                if mine != log
            ]
            differences.append(Difference(table, named, "edited", "; ".join(changed)))
    for key in sorted(derived_by_key, key=lambda k: tuple(map(str, k))):
        differences.append(Difference(table, dict(zip(KEYS[table], key, strict=True)), "missing"))
    return differences[:SHOWN_DIFFERENCES], len(differences)
