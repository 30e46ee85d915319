"""Datasette's big table pages count and facet from kept tables (m011, serve/kept_counts.py).

A real warehouse file with samples in and out of the dataset (redone, exact copies, rejected by
a reviewer, no label), events without a recipe and a merge; the kept tables are compared with
their rebuild from the log, and the pages of a real Datasette (its own in-process client, as
bench_scale.py asks them) with the true counts, which SQLite counts from the views themselves.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from datasette.tracer import capture_traces

from medstore.serve.kept_counts import KeptCountsDatabase, kept_query
from medstore.warehouse.derived import compare, rebuild_all
from medstore.warehouse.events import (
    Envelope,
    ReviewVerdict,
    RunStarted,
    SampleAccepted,
    SampleRejected,
    TaskFailed,
    TaskStarted,
)
from medstore.warehouse.merge import merge_warehouses
from medstore.warehouse.store import Warehouse

RECIPES = ("consult", "hierarchical")
KEPT_TABLES = ("sample_counts", "event_counts", "status_counts")


def decide(
    warehouse: Warehouse, recipe: str, i: int, outcome: str, *, label: str | None = "low",
    content: str | None = None, run: str = "run-1",
) -> None:  # fmt: skip
    envelope = Envelope(run, recipe, f"{recipe}:case-{i}:v1")
    events: list[tuple[Any, Envelope]] = [
        (TaskStarted(source_id=f"case-{i}", source_record="{}"), envelope)
    ]
    if outcome == "accepted":
        sample = SampleAccepted(
            sample_id=f"{recipe}-{i}-{run}", content_hash=content or f"h-{recipe}-{i}-{run}",
            sample="{}", label=label,
        )  # fmt: skip
        events.append((sample, envelope))
    elif outcome == "rejected":
        events.append((SampleRejected(reason="unsafe"), envelope))
    elif outcome == "failed":
        events.append((TaskFailed(reason="timeout"), envelope))
    warehouse.append(events)


def review(warehouse: Warehouse, sample_id: str, verdict: str) -> None:
    verdict_event = ReviewVerdict(sample_id=sample_id, verdict=verdict, reviewer="qa")
    warehouse.append([(verdict_event, Envelope(None, sample_id.split("-")[0]))])


def fill(warehouse: Warehouse) -> None:
    """Per recipe: labels high/low/none, a redone task, two exact copies, reviews either way,
    rejections, a failure, a pending task; and a run-level event with no recipe."""
    warehouse.append([(RunStarted(command="run", config={}, code_version="t"), Envelope("run-1"))])
    for recipe in RECIPES:
        for i, label in enumerate(["high", "high", "low", None, "low"]):
            decide(warehouse, recipe, i, "accepted", label=label)
        decide(warehouse, recipe, 5, "accepted", content="same", label="moderate")
        decide(warehouse, recipe, 6, "accepted", content="same", label="moderate")  # a copy
        decide(warehouse, recipe, 7, "rejected")
        decide(warehouse, recipe, 8, "failed")
        decide(warehouse, recipe, 9, "pending")
        decide(warehouse, recipe, 0, "rejected", run="run-2")  # task 0 redone: out
        decide(warehouse, recipe, 8, "accepted", label="high", run="run-2")  # failed, redone
    review(warehouse, "consult-1-run-1", "reject")
    review(warehouse, "consult-2-run-1", "reject")
    review(warehouse, "consult-2-run-1", "accept")  # its latest review: back in
    review(warehouse, "hierarchical-4-run-1", "accept")


def assert_kept_equal_rebuild(warehouse: Warehouse) -> None:
    for table in KEPT_TABLES:
        assert compare(warehouse.conn, table) == ([], 0), table


def true_counts(path: Path, table: str, column: str, where: str = "") -> dict[Any, int]:
    """``column``'s values and their rows in ``table``, counted by SQLite from the table."""
    with Warehouse(path, readonly=True, require_current=False) as warehouse:  # TEMP views
        rows = warehouse.query(
            f"SELECT {column} AS value, count(*) AS n FROM {table} {where} GROUP BY {column}"
        )
    return {row["value"]: row["n"] for row in rows}


def total(path: Path, table: str, where: str = "") -> int:
    return sum(true_counts(path, table, "1", where).values())


def test_kept_tables_equal_their_rebuild_through_redos_reviews_and_rebuilds(warehouse) -> None:
    fill(warehouse)
    assert_kept_equal_rebuild(warehouse)
    labels = {
        row["label"]: row["n"]
        for row in warehouse.query(
            "SELECT label, sum(n) AS n FROM sample_counts WHERE recipe = 'consult' GROUP BY 1"
        )
    }
    # consult: 0 redone away, 1 rejected by a reviewer, 6 a copy of 5; 8 redone to high.
    assert labels == {"high": 1, "low": 2, None: 1, "moderate": 1}
    review(warehouse, "consult-5-run-1", "reject")  # the copy it shadowed takes its place
    assert_kept_equal_rebuild(warehouse)
    decide(warehouse, "consult", 6, "rejected", run="run-3")  # and the copy leaves
    assert_kept_equal_rebuild(warehouse)
    rebuild_all(warehouse.conn)
    assert_kept_equal_rebuild(warehouse)
    warehouse.conn.execute("UPDATE event_counts SET n = n + 1 WHERE recipe = ''")
    report = warehouse.verify()
    assert not report.ok and any("event_counts" in str(p) for p in report.problems)


def test_kept_tables_after_a_merge(tmp_path: Path) -> None:
    shards = []
    for n in range(2):
        path = tmp_path / f"shard{n}.db"
        with Warehouse(path) as shard:
            for i in range(n, 8, 2):
                decide(shard, "consult", i, "accepted", label=("high", "low")[i % 2], run=f"r{n}")
            decide(shard, "consult", 0, "rejected", run=f"late-{n}")  # both decide task 0
        shards.append(path)
    target = tmp_path / "merged.db"
    merge_warehouses([str(p) for p in shards], str(target))
    with Warehouse(target) as merged:
        assert_kept_equal_rebuild(merged)
        assert merged.verify().ok


def test_a_warehouse_made_before_task_heads_kept_validator_versions(db_path: Path) -> None:
    """m010: a task_heads made by the first m008 (no validator_version) gets the column, filled
    from the log, and m011's counts; task_state reads again."""
    with Warehouse(db_path) as warehouse:
        fill(warehouse)
        conn = warehouse.conn
        for trigger in ("insert", "update", "delete"):
            conn.execute(f"DROP TRIGGER sample_index_facets_{trigger}")
        conn.execute("DROP TABLE sample_counts")
        conn.execute("DROP TABLE event_counts")
        views = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")
        ]
        for view in views:  # made again on open
            conn.execute(f"DROP VIEW {view}")
        conn.execute("ALTER TABLE task_heads DROP COLUMN validator_version")
        conn.execute("DELETE FROM _migrations WHERE name IN (?, ?)", MIGRATED)
    with Warehouse(db_path) as reopened:
        assert_kept_equal_rebuild(reopened)
        assert compare(reopened.conn, "task_heads") == ([], 0)
        assert len(reopened.query("SELECT validator_version FROM task_state")) == 20


MIGRATED = ("m010_task_heads_validator_version", "m011_facet_counts")

# Datasette pages ---------------------------------------------------------------------------


@pytest.fixture
def served(warehouse: Warehouse, db_path: Path, monkeypatch):
    from medstore.serve import app

    fill(warehouse)
    warehouse.close()
    monkeypatch.setattr(app, "refresh_search_index", lambda path: 0)
    datasette = app.make_datasette(db_path)
    assert isinstance(datasette.databases["warehouse"], KeptCountsDatabase)
    return datasette


def get(datasette: Any, url: str) -> tuple[Any, list[str]]:
    """A page through Datasette's own client, and the SQL it ran (whitespace collapsed)."""

    async def load() -> tuple[Any, list[str]]:
        traces: list[dict] = []
        with capture_traces(traces):
            response = await datasette.client.get(url)
        return response, [" ".join(t["sql"].split()) for t in traces if "sql" in t]

    response, sql = asyncio.run(load())
    assert response.status_code == 200, (url, response.text[:300])
    return response, sql


def facets(page: dict) -> dict[str, dict[Any, int]]:
    return {
        name: {item["value"]: item["count"] for item in facet["results"]}
        for name, facet in page["facet_results"].items()
    }


def without_null(counts: dict[Any, int]) -> dict[Any, int]:
    return {value: n for value, n in counts.items() if value is not None}


PAGES = {
    "samples": ("recipe", "label", "review_verdict"),
    "task_state": ("recipe", "state", "reason"),
    "events": ("event_type", "recipe"),
}


@pytest.mark.parametrize("table", list(PAGES))
def test_unfiltered_pages_show_the_true_counts_from_kept_tables(served, db_path, table) -> None:
    response, sql = get(served, f"/warehouse/{table}.json")
    page = response.json()
    total = sum(true_counts(db_path, table, "1").values())
    assert page["filtered_table_rows_count"] == total > 0
    shown = facets(page)
    assert list(shown) == list(PAGES[table])
    for column in PAGES[table]:
        assert shown[column] == without_null(true_counts(db_path, table, column)), column
    # Nothing counted or grouped the table or view itself: each number came from a kept table.
    assert not [q for q in sql if f"count(*) from {table}" in q or "group by" in q], sql
    kept = [q for q in sql if any(name in q for name in KEPT_TABLES)]
    assert len(kept) == 1 + len(PAGES[table]), sql


def test_task_outcomes_counts_states_from_kept_tables_and_failure_kinds_itself(
    served, db_path
) -> None:
    """One row per task, like task_state: its count and its state and recipe facets are kept;
    failure_kind (a task's last failed check) is not, so Datasette groups the view for it."""
    response, sql = get(served, "/warehouse/task_outcomes.json?recipe=consult")
    page = response.json()
    where = "WHERE recipe = 'consult'"
    assert page["filtered_table_rows_count"] == total(db_path, "task_outcomes", where) == 10
    for column in ("state", "failure_kind", "recipe"):
        counted = without_null(true_counts(db_path, "task_outcomes", column, where))
        assert facets(page)[column] == counted, column
    assert not [q for q in sql if "count(*) from task_outcomes" in q], sql
    grouped = [q for q in sql if "group by" in q and "from task_outcomes" in q]
    assert len(grouped) == 1 and "failure_kind" in grouped[0], sql


def test_the_html_page_shows_the_count_and_facets(served, db_path) -> None:
    response, _ = get(served, "/warehouse/samples")
    total = sum(true_counts(db_path, "samples", "1").values())
    assert f"{total:,} rows" in response.text
    for value, n in without_null(true_counts(db_path, "samples", "label")).items():
        assert re.search(rf"label={value}\"[^>]*>{value}</a> {n:,}", response.text), value


def assert_filtered_page_is_true(served, db_path, table: str, query: str, where: str) -> list[str]:
    """The filtered page's count and facets equal SQLite's own; the SQL the page ran."""
    response, sql = get(served, f"/warehouse/{table}.json?{query}")
    page = response.json()
    assert page["filtered_table_rows_count"] == sum(
        true_counts(db_path, table, "1", where).values()
    )
    for column in PAGES[table]:
        assert facets(page)[column] == without_null(true_counts(db_path, table, column, where))
    return sql


@pytest.mark.parametrize(
    ("table", "query", "where"),
    [
        ("samples", "label=high", "WHERE label = 'high'"),
        (
            "samples",
            "recipe=consult&label=moderate",
            "WHERE recipe = 'consult' AND label = 'moderate'",
        ),
        ("task_state", "state=rejected", "WHERE state = 'rejected'"),
        ("task_state", "reason=", "WHERE reason = ''"),
        (
            "events",
            "event_type=task_started&recipe=hierarchical",
            "WHERE event_type = 'task_started' AND recipe = 'hierarchical'",
        ),
    ],
)
def test_equality_filters_on_counted_columns_are_kept_too(
    served, db_path, table, query, where
) -> None:
    sql = assert_filtered_page_is_true(served, db_path, table, query, where)
    assert not [q for q in sql if f"count(*) from {table}" in q], sql


@pytest.mark.parametrize(
    ("table", "query", "where"),
    [
        ("samples", "run_id=run-2", "WHERE run_id = 'run-2'"),  # not a counted column
        ("samples", "label__contains=o", "WHERE label LIKE '%o%'"),  # not an equality
        ("samples", "label__isnull=1", "WHERE label IS NULL"),
    ],
)
def test_other_filters_are_counted_by_datasette_itself(
    served, db_path, table, query, where
) -> None:
    sql = assert_filtered_page_is_true(served, db_path, table, query, where)
    assert [q for q in sql if q.startswith(f"select count(*) from {table} where")], sql


def test_a_facet_on_another_column_is_datasettes_own(served, db_path) -> None:
    response, sql = get(served, "/warehouse/events.json?event_type=task_started&_facet=stage")
    where = "WHERE event_type = 'task_started'"
    assert facets(response.json())["stage"] == without_null(
        true_counts(db_path, "events", "stage", where)
    )
    assert [q for q in sql if q.startswith("select stage as value, count(*)")], sql


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("select count(*) from llm_calls ", {}),  # not a kept view
        (
            'select count(*) from samples where "label" = :p0 and "label" = :p1',
            {"p0": "a", "p1": "b"},
        ),
        ('select count(*) from samples where "label" = :p0', {"p0": "a", "p1": "b"}),  # unused
        ('select count(*) from samples where "label" = :p0', ["a"]),  # positional
        ('select count(*) from samples where "label" = :p0', {"p0": 3}),  # not text
        ('select count(*) from samples where "label" = :p0 or 1', {"p0": "a"}),
        ("select count(*) from samples where rowid in (select 1)", {}),
        ("select count(*) from (select * from samples)", {}),
        (
            "select run_id as value, count(*) as count from ( select run_id from samples ) "
            "where run_id is not null group by run_id order by count desc, value limit 31",
            {},
        ),  # not a counted column
        ("select label, count(*) from samples group by label", {}),
    ],
)
def test_anything_else_runs_as_written(sql: str, params: Any) -> None:
    assert kept_query(sql, params) is None


def test_datasettes_own_queries_are_recognised() -> None:
    count = kept_query("select count(*) from samples ", {})
    assert count is not None and "sample_counts" in count[0]
    assert count[1] == {"recipe": None, "label": None, "review_verdict": None}
    facet = kept_query(
        "\n  select [label] as value, count(*) as count from (\n select sample_id, label from"
        ' samples where "recipe" = :p0 )\n where [label] is not null\n group by [label] order'
        " by count desc, value limit 11",
        {"p0": "consult"},
    )
    assert facet is not None
    assert facet[1] == {
        "recipe": "consult", "label": None, "review_verdict": None, "column": "label", "limit": 11
    }  # fmt: skip


def test_plain_datasette_gets_kept_counts_and_an_older_file_its_own(db_path: Path) -> None:
    """Under `datasette warehouse.db` the plugin's startup swaps the database class in; a file
    from before m011 (no kept tables) keeps Datasette's own, whose counts are still true."""
    from datasette.app import Datasette

    from medstore.serve import plugin

    with Warehouse(db_path) as warehouse:
        fill(warehouse)

    def started() -> Any:
        plugin.register()
        datasette = Datasette(files=[str(db_path)])
        asyncio.run(datasette.invoke_startup())
        return datasette

    datasette = started()
    assert isinstance(datasette.databases["warehouse"], KeptCountsDatabase)
    assert get(datasette, "/warehouse/samples.json")[0].json()["filtered_table_rows_count"] == (
        total(db_path, "samples")
    )
    conn = sqlite3.connect(db_path)
    with conn:
        for trigger in ("insert", "update", "delete"):
            conn.execute(f"DROP TRIGGER sample_index_facets_{trigger}")
        conn.execute("DROP TABLE sample_counts")
        conn.execute("DELETE FROM _migrations WHERE name = 'm011_facet_counts'")
    conn.close()
    older = started()
    assert not isinstance(older.databases["warehouse"], KeptCountsDatabase)
    response, sql = get(older, "/warehouse/samples.json")
    assert response.json()["filtered_table_rows_count"] == total(db_path, "samples")
    assert "select count(*) from samples" in sql
