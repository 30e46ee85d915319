"""Table-page counts and facets from kept count tables, so that big pages stay fast.

A Datasette table page runs ``select count(*)`` over its table or view and one ``GROUP BY`` per
facet: at 10M events about 1 s each, a page of 1.3-3.4 s. For the pages that grow with the log
(`samples`, `task_state` and `task_outcomes`, `events`) the warehouse keeps those counts:
``sample_counts`` and ``event_counts`` (m011) and ``status_counts`` (m009), each equal to its
rebuild from the log.

``KeptCountsDatabase`` is Datasette's own database class with one change: a query Datasette
makes for a page's count or a column facet, over the whole table or view or one filtered only
by ``column = value`` on counted columns, is answered by the matching named query over the kept
table (``serve_kept_*`` in sql/queries/serve.sql): the same numbers, in the same order. Every
other query, a filter Datasette writes any other way, a search or a facet on another column,
runs as Datasette wrote it, within its time limits; when one stops there Datasette says so
(no count, or "facet timed out") rather than showing a number it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from datasette.database import Database

from medstore.warehouse import queries


@dataclass(frozen=True)
class Kept:
    """A table or view whose rows are counted per value of ``columns`` in a kept table."""

    count_query: str
    facet_query: str
    columns: tuple[str, ...]


KEPT = {
    "samples": Kept(
        "serve_kept_samples_count",
        "serve_kept_samples_facet",
        ("recipe", "label", "review_verdict"),
    ),
    # One row per task, and the same recipe, state and reason, in both views.
    "task_state": Kept(
        "serve_kept_task_state_count", "serve_kept_task_state_facet", ("recipe", "state", "reason")
    ),
    "task_outcomes": Kept(
        "serve_kept_task_state_count", "serve_kept_task_state_facet", ("recipe", "state", "reason")
    ),
    "events": Kept("serve_kept_events_count", "serve_kept_events_facet", ("recipe", "event_type")),
}
# The tables those queries read: a warehouse from before m011 lacks some.
KEPT_TABLES = {"sample_counts", "event_counts", "status_counts"}

# Datasette 0.65's count and column-facet SQL (views/table.py, facets.py), whitespace collapsed.
NAME = r"(?:\w+|\[\w+\]|\"\w+\")"
WHERE = r"(?: where (?P<where>.+?))?"
COUNT = re.compile(rf"select count\(\*\) from (?P<table>{NAME}){WHERE}")
FACET = re.compile(
    rf"select (?P<column>{NAME}) as value, count\(\*\) as count from \("
    rf" select [^()]* from (?P<table>{NAME}){WHERE} \)"
    r" where (?P=column) is not null group by (?P=column)"
    r" order by count desc, value limit (?P<limit>\d+)"
)
# Datasette's `?column=value` filter (its "exact" filter).
EQUALS = re.compile(r"(?P<column>\"\w+\"|\[\w+\]) = :(?P<param>p\d+)")


def unquote(name: str) -> str:
    return name.strip('[]"')


def kept_query(sql: str, params: Any) -> tuple[str, dict[str, Any]] | None:
    """The kept-count query that answers ``sql`` (one of Datasette's count or facet queries
    over a kept table or view) with the same rows, and its parameters; None for any other."""
    text = " ".join(sql.split())
    for pattern, is_facet in ((COUNT, False), (FACET, True)):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        kept = KEPT.get(unquote(match["table"]))
        if kept is None:
            return None
        filters = equality_filters(match["where"], params, kept.columns)
        if filters is None:
            return None
        if not is_facet:
            return queries.sql(kept.count_query), filters
        column = unquote(match["column"])
        if column not in kept.columns:
            return None
        return queries.sql(kept.facet_query), {
            **filters,
            "column": column,
            "limit": int(match["limit"]),
        }
    return None


def equality_filters(
    where: str | None, params: Any, columns: tuple[str, ...]
) -> dict[str, Any] | None:
    """``{column: value or None}`` for a WHERE made only of ``column = :pN`` on ``columns``,
    each column at most once and every parameter used; None for any other WHERE."""
    given = dict(params or {}) if isinstance(params, dict) or not params else None
    if given is None:
        return None  # positional parameters: not a query of Datasette's table page
    filters: dict[str, Any] = dict.fromkeys(columns)
    used = set()
    for clause in where.split(" and ") if where else []:
        match = EQUALS.fullmatch(clause)
        if match is None:
            return None
        column, param = unquote(match["column"]), match["param"]
        if column not in columns or filters[column] is not None or param not in given:
            return None
        if not isinstance(given[param], str):
            return None
        filters[column] = given[param]
        used.add(param)
    if used != set(given):
        return None
    return filters


class KeptCountsDatabase(Database):
    """Datasette's database, answering big pages' counts and facets from kept counts."""

    async def execute(
        self,
        sql: str,
        params: Any = None,
        truncate: bool = False,
        custom_time_limit: int | None = None,
        page_size: int | None = None,
        log_sql_errors: bool = True,
    ) -> Any:
        kept = kept_query(sql, params)
        if kept is not None:
            sql, params = kept
        return await super().execute(
            sql, params, truncate, custom_time_limit, page_size, log_sql_errors
        )


def use_kept_counts(datasette: Any, name: str) -> None:
    """Serve database ``name`` through ``KeptCountsDatabase`` (same file, same mode)."""
    current = datasette.databases[name]
    if isinstance(current, KeptCountsDatabase):
        return
    replacement = KeptCountsDatabase(datasette, path=current.path, is_mutable=current.is_mutable)
    current.close()
    datasette.remove_database(name)
    datasette.add_database(replacement, name=name, route=current.route)
