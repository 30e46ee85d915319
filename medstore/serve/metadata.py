"""What Datasette shows about a warehouse: titles, descriptions, facets, column labels and the
canned queries (``sql/canned``), for every table and view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medstore.resources import resource_dir
from medstore.serve.search import FTS_TABLE, SAMPLE_FTS_TABLE
from medstore.warehouse.store import Warehouse, view_files

TABLES: dict[str, tuple[str, str]] = {
    "events": (
        "Event log",
        "Every step of every run, append-only: LLM requests and responses, errors, verdicts, "
        "repairs, accepted and rejected samples, reviews, exports and training. Long texts are "
        "in blobs, referenced by hash.",
    ),
    "blobs": (
        "Blobs",
        "Long texts (prompts, raw outputs, source records, samples), stored once, keyed by their "
        "content hash.",
    ),
    "chain_head": (
        "Hash chain head",
        "The last link of the events hash chain; `python cli.py verify` recomputes the chain.",
    ),
    "_migrations": ("Schema migrations", "Migrations applied to this warehouse, in order."),
    "sample_index": (
        "Sample index",
        "Derived, not part of the log: every accepted sample with whether it is its task's "
        "current outcome, a copy of an earlier sample, and its latest review. Kept by the writer "
        "as events land; the samples view reads it.",
    ),
    "run_totals": (
        "Run totals",
        "Derived, not part of the log: per-run counts, tokens and cost, kept by the writer as "
        "events land; the run_summary view reads it.",
    ),
    "run_failures": (
        "Run failures",
        "Derived, not part of the log: rejected, failed and skipped counts per run and reason, "
        "kept by the writer; run_summary reads it.",
    ),
    "answered_requests": (
        "Answered requests",
        "Derived, not part of the log: the hash of every request the log holds an answer to "
        "(the request cache's index), kept by the writer.",
    ),
    "status_counts": (
        "Status counts",
        "Derived, not part of the log: tasks per recipe, state and reason, and samples per "
        "recipe, kept by triggers on task_heads and sample_index; status reads it.",
    ),
    "sample_counts": (
        "Sample counts",
        "Derived, not part of the log: the dataset's samples per recipe, label and review "
        "verdict, kept by triggers on sample_index; the samples page counts and facets from it.",
    ),
    "event_counts": (
        "Event counts",
        "Derived, not part of the log: events per recipe and type, kept by the writer; the "
        "events page counts and facets from it.",
    ),
    "task_gate_failures": (
        "Task gate failures",
        "Derived, not part of the log: the content gates each rejected task's verdicts name, "
        "kept by triggers on task_heads; gate_rejections counts it.",
    ),
    "gate_rejections": (
        "Gate rejections",
        "Derived, not part of the log: rejected tasks per recipe and content gate they failed, "
        "kept by triggers on task_gate_failures; status reads it.",
    ),
    "task_heads": (
        "Task heads",
        "Derived, not part of the log: each task's latest deciding event (started, accepted, "
        "rejected, failed), kept by the writer; task_state, resume and status read it.",
    ),
    FTS_TABLE: (
        "Raw output search index",
        "Derived, not part of the log: a full-text index over the raw output of every LLM "
        "response, built by `serve` and refreshed while it runs. Safe to drop; rebuilt on start.",
    ),
    SAMPLE_FTS_TABLE: (
        "Sample search index",
        "Derived, not part of the log: a full-text index over the text of every accepted "
        "sample, built by `serve` and refreshed while it runs. Safe to drop; rebuilt on start.",
    ),
}

VIEW_TITLES = {
    "llm_calls": "LLM calls",
    "llm_errors": "LLM errors",
    "task_state": "Task states",
    "samples": "Samples (the dataset)",
    "run_summary": "Runs",
    "provenance": "Provenance (all samples)",
    "validation_verdicts": "Validation verdicts",
    "review_verdicts": "Reviewer verdicts",
    "sample_exports": "Sample exports",
    "check_failures": "Failed checks",
    "task_outcomes": "Tasks and why they ended",
    "review_queue": "Review queue (every reviewable sample)",
}

FACETS = {
    "events": ["event_type", "recipe"],
    "llm_calls": ["recipe", "stage", "model", "backend", "outcome"],
    "llm_errors": ["error_type", "recipe", "stage", "http_status"],
    "validation_verdicts": ["verdict", "recipe", "stage", "failure_kind"],
    "check_failures": ["failure_kind", "recipe", "stage"],
    "task_state": ["recipe", "state", "reason"],
    "task_outcomes": ["state", "failure_kind", "recipe"],
    "review_queue": ["review_state", "recipe", "label", "gate"],
    "samples": ["recipe", "label", "review_verdict"],
    "run_summary": ["recipe", "status"],
    "review_verdicts": ["verdict", "reviewer", "recipe"],
    FTS_TABLE: ["recipe", "stage"],
    SAMPLE_FTS_TABLE: ["recipe", "label"],
}
# Views with a search box: their full-text index and the column that is its rowid.
SEARCHABLE = {"review_queue": (SAMPLE_FTS_TABLE, "accepted_id")}

COLUMNS = {
    "id": "Position in the event log (grows with time)",
    "event_id": "Globally unique event id (UUIDv7, time-ordered)",
    "run_id": "The run that wrote the event",
    "recipe": "Recipe (which generator produced it)",
    "task_key": "Deterministic task id: recipe + source record + recipe version",
    "stage": "Recipe stage (one LLM call with its checks)",
    "attempt": "0 for the first call, 1+ for repair attempts",
    "event_type": "What happened",
    "parent_event_id": "The event this one answers (e.g. the request of a response)",
    "payload_json": "The event's properties; *_blob fields are hashes into blobs",
    "created_utc": "When it was written (UTC)",
    "prev_hash": "Hash chain: the previous row's hash",
    "hash": "Hash chain: this row's hash",
    "sample_id": "Sample id; opens the sample's provenance page",
    "label": "The sample's label (what dataset balance is computed on)",
    "accepted_event_id": "The sample_accepted event",
    "content_hash": "Hash of the sample's content (exact duplicates share it)",
    "review_verdict": "Latest reviewer verdict: accept, reject, or blank if not reviewed",
    "review_note": "The reviewer's note",
    "sample_json": "The sample itself",
    "state": "Latest task state: accepted, rejected, failed or pending",
    "reason": "Why a task was rejected or failed",
    "model": "Teacher model",
    "backend": "Teacher backend (openai, ollama, local)",
    "outcome": "How the call ended: response, cache_replay, error or pending",
    "input_tokens": "Prompt tokens",
    "output_tokens": "Completion tokens",
    "latency_ms": "Seconds × 1000 from request to answer",
    "cost_usd": "Cost in USD (blank when the model's price is unknown)",
    "error_type": "rate_limited, server_error, timeout, connection, bad_response, client_error",
    "verdict": "Outcome of a check or a review",
    "first_error": "The first error the check reported",
    "reviewer": "Who gave the verdict",
    "note": "The reviewer's note",
    "content": "The text",
    "size": "Length in characters",
    "raw_output": "What the teacher answered, verbatim",
    "failure_kind": "What failed, short (stage: field or check); facet on it",
    "message": "The full error message",
    "review_state": "unreviewed, accepted or rejected (by a reviewer)",
    "gate": "The check it first failed on its way (a repair fixed it); blank if none",
    "judge_score": "A judge stage's score (blank: no recipe has a judge stage yet)",
    "error_index": "Position of the error in its check's list",
}


def database_name(db_path: str | Path) -> str:
    """The name Datasette gives a database file: its stem."""
    return Path(db_path).stem


def load_queries() -> dict[str, dict[str, str]]:
    """Canned queries from ``sql/canned/NN_name.sql``: a title line, a
    description in the following comment lines, then the SQL."""
    queries = {}
    for path in sorted(resource_dir("sql").joinpath("canned").glob("*.sql")):
        name = path.stem.split("_", 1)[1]
        lines = path.read_text().splitlines()
        header = []
        while lines and lines[0].startswith("--"):
            header.append(lines.pop(0)[2:].strip())
        queries[name] = {
            "title": header[0],
            "description": " ".join(header[1:]),
            "sql": "\n".join(lines).strip(),
        }
    return queries


def view_descriptions() -> dict[str, str]:
    """Each view's header comment (the sql/views file's leading `--` lines), minus its name."""
    descriptions = {}
    for path in view_files():
        name = path.stem.split("_", 1)[1] if path.stem[:2].isdigit() else path.stem
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("--"):
                break
            comment.append(line[2:].strip())
        text = " ".join(comment)
        if text.startswith(f"{name}:"):
            text = text.split(":", 1)[1].strip()
        descriptions[name] = text[:1].upper() + text[1:]
    return descriptions


def build_metadata(warehouse: Warehouse, database: str) -> dict[str, Any]:
    """Titles, descriptions, default facets and column labels for every table and view."""
    views = view_descriptions()
    tables: dict[str, Any] = {}
    for row in warehouse.select("serve_tables_and_views"):
        columns = [c["name"] for c in warehouse.select("serve_table_columns", table=row["name"])]
        tables[row["name"]] = table_metadata(row["name"], row["type"], columns, views)
    canned = load_queries()
    missing = [index for index in (FTS_TABLE, SAMPLE_FTS_TABLE) if index not in tables]
    # Only `cli.py serve` builds the search indexes; plain `datasette` opens the file read-only.
    canned = {
        name: query
        for name, query in canned.items()
        if not any(index in query["sql"] for index in missing)
    }
    for view, (index, pk) in SEARCHABLE.items():
        if view in tables and index in tables:
            tables[view] |= {"fts_table": index, "fts_pk": pk}
    return {
        "title": "medstore warehouse",
        "description_html": (
            "Every LLM call, raw output, repair and verdict behind the generated datasets. "
            'Work through the <a href="/-/medstore/review">review queue</a>, see '
            f'<a href="/{database}/task_outcomes">every task and why it ended</a>, '
            '<a href="/-/medstore/charts">charts</a>, the canned queries below, '
            "or open any sample id for its provenance page."
        ),
        "databases": {
            database: {
                "description": "The event log and its derived views.",
                "tables": tables,
                "queries": canned,
            }
        },
    }


def table_metadata(
    name: str, kind: str, columns: list[str], views: dict[str, str]
) -> dict[str, Any]:
    """One table's or view's entry: title, description, column labels, facets, sort order."""
    if name in TABLES:
        title, description = TABLES[name]
    else:
        title = VIEW_TITLES.get(name, name.replace("_", " ").capitalize())
        description = views.get(name, "")
    entry: dict[str, Any] = {
        "title": title,
        "description": description,
        "columns": {c: COLUMNS[c] for c in columns if c in COLUMNS},
    }
    if name in FACETS:
        entry["facets"] = [c for c in FACETS[name] if c in columns]
    if kind == "table" and "id" in columns:
        entry["sort_desc"] = "id"  # newest first
    return entry
