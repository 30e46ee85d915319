"""Named SQL. Every query medstore runs more than once, and every "current state" rule, lives
in ``sql/queries/*.sql`` under a name, in aiosql's format::

    -- name: finished_tasks
    -- Tasks whose latest state is final: resume skips them.
    SELECT task_key FROM task_state WHERE recipe = :recipe AND state IN ('accepted', 'rejected');

aiosql parses the files (names, the suffix saying what a query returns: none, rows; ``^``, one
row; ``$``, one value; ``!``, a change; ``*!``, a change over many parameter sets). The
helpers below run a query by name on our own connections, so rows come back as plain dicts and
a whole-log scan streams instead of loading.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import aiosql

from medstore.resources import resource_dir


@cache
def named() -> Any:
    """Every named query, parsed once per process."""
    return aiosql.from_path(resource_dir("sql") / "queries", "sqlite3", mandatory_parameters=False)


@cache
def sql(name: str) -> str:
    """The text of a named query."""
    try:
        return getattr(named(), name).sql
    except AttributeError:
        raise KeyError(f"no query named {name!r} in sql/queries") from None


def iterate(conn: sqlite3.Connection, name: str, /, **params: Any) -> Iterator[sqlite3.Row]:
    """The rows of a named query one at a time (for scans over the whole log)."""
    yield from conn.execute(sql(name), params)


def select(conn: sqlite3.Connection, name: str, /, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(sql(name), params)]


def select_one(conn: sqlite3.Connection, name: str, /, **params: Any) -> dict[str, Any] | None:
    row = conn.execute(sql(name), params).fetchone()
    return dict(row) if row is not None else None


def select_value(conn: sqlite3.Connection, name: str, /, **params: Any) -> Any:
    row = conn.execute(sql(name), params).fetchone()
    return row[0] if row is not None else None


def execute(conn: sqlite3.Connection, name: str, /, **params: Any) -> int:
    return conn.execute(sql(name), params).rowcount


def execute_many(conn: sqlite3.Connection, name: str, rows: Iterable[Any], /) -> int:
    return conn.executemany(sql(name), rows).rowcount
