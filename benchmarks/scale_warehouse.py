"""A synthetic warehouse of up to tens of millions of events, written fast and cached.

Rows go straight into the real schema (a warehouse made by ``Warehouse``, every migration
applied). A first block of up to ``BASE_TASKS`` tasks is written in Python as the runner writes
them (``canonical_json`` payloads, ``content_hash`` blobs, the ``link_hash`` chain); larger
warehouses are then grown by copying that block inside SQLite, each copy with its own task keys,
event ids, request hashes, sample ids and content hashes (``COPY_BLOCK``), so that every task,
request and sample stays distinct. The copies share the block's blobs and are not re-chained:
``verify`` passes on a warehouse of one block (bench_scale checks it on the small one), not on
a grown one. Secondary indexes are dropped during the load and rebuilt once at the end (a sorted
build instead of millions of random b-tree inserts), blobs are loaded in hash order from a
staging table, and the derived tables are filled by their own definitions (``sql/derived``) or,
for the per-run sums, counted here.

The shape: consult-like tasks (task started, three stages of request → response → verdict;
every 10th task repairs its last stage once; one in 13 rejected, the rest accepted), spread
over 10 runs: ~11.4 events per task.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from medstore.warehouse import queries
from medstore.warehouse.chain import link_hash
from medstore.warehouse.derived import rebuild
from medstore.warehouse.hashing import canonical_json, content_hash, json_hash, short_hash, uuid7
from medstore.warehouse.projections import SUMS
from medstore.warehouse.store import Warehouse, set_head

RECIPE = "consult"
STAGES = ("profile", "dialogue", "expert")
LABELS = ("low", "medium", "high")
SYSTEM_PROMPT = "You are a careful clinician who writes realistic, safe training material. " * 4
EVENTS_PER_TASK = 11.4
BATCH_TASKS = 5000
BASE_TASKS = 10_000
GENERATOR_VERSION = 2  # change when the shape changes: cached warehouses are then remade
VERBOSE = False  # print each finishing step's time
START = datetime(2026, 1, 1, tzinfo=UTC)

# One copy of the first block's task events (:copy = 1, 2, …), distinct where it matters.
COPY_BLOCK = """
INSERT INTO events (
    event_id, run_id, recipe, task_key, stage, attempt, event_type, parent_event_id,
    payload_json, created_utc, prev_hash, hash
)
SELECT
    'c' || :copy || '-' || event_id,
    run_id,
    recipe,
    replace(task_key, ':synthetic-', ':synthetic-c' || :copy || '-'),
    stage,
    attempt,
    event_type,
    'c' || :copy || '-' || parent_event_id,
    CASE
        WHEN event_type IN ('llm_request', 'llm_response') THEN json_set(payload_json,
            '$.request_hash', json_extract(payload_json, '$.request_hash') || '-c' || :copy)
        WHEN event_type = 'sample_accepted' THEN json_set(payload_json,
            '$.sample_id', json_extract(payload_json, '$.sample_id') || '-c' || :copy,
            '$.content_hash', json_extract(payload_json, '$.content_hash') || '-c' || :copy)
        WHEN event_type = 'task_started' THEN json_set(payload_json,
            '$.source_id', 'c' || :copy || '-' || json_extract(payload_json, '$.source_id'))
        ELSE payload_json
    END,
    created_utc,
    hash,
    hash
FROM events
WHERE id <= :last_id AND task_key IS NOT NULL
ORDER BY id
"""


def cached_path(folder: Path, events: int) -> Path:
    """Where the warehouse of ``events`` events is cached (opening it applies newer migrations)."""
    return folder / f"scale-{events}-g{GENERATOR_VERSION}.db"


class Log:
    """The rows being written: the chain so far, a clock, the run's counters."""

    def __init__(self) -> None:
        self.prev_hash = "genesis"
        self.count = 0
        self.rows: list[tuple] = []
        self.blobs: dict[str, str] = {}
        self.totals: dict[str, dict] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.answers_copied = False

    def add(
        self,
        event_type: str,
        payload: dict,
        run_id: str,
        task_key: str | None = None,
        stage: str | None = None,
        attempt: int | None = None,
        parent: str | None = None,
    ) -> str:
        event_id = uuid7()
        created = (START + timedelta(microseconds=self.count * 1000)).isoformat(
            timespec="microseconds"
        )[:-6] + "Z"
        fields = (
            event_id, run_id, RECIPE, task_key, stage, attempt, event_type, parent,
            canonical_json(payload), created,
        )  # fmt: skip
        this_hash = link_hash(self.prev_hash, fields)
        self.rows.append((*fields, self.prev_hash, this_hash))
        self.prev_hash = this_hash
        self.count += 1
        self.tally(run_id, event_type, payload, created)
        return event_id

    def blob(self, text: str) -> str:
        digest = content_hash(text)
        self.blobs[digest] = text
        return digest

    def tally(self, run_id: str, event_type: str, payload: dict, created: str) -> None:
        from medstore.warehouse.projections import COUNTED, FAILURES

        run = self.totals.setdefault(
            run_id,
            dict.fromkeys(SUMS, 0)
            | {"run_id": run_id, "recipe": None, "started_utc": created, "finished_utc": None}
            | {"status": None},
        )
        if event_type in COUNTED:
            run[COUNTED[event_type]] += 1
        if event_type == "run_started":
            run["recipe"] = RECIPE
        elif event_type == "run_finished":
            run["finished_utc"], run["status"] = created, payload["status"]
        elif event_type == "llm_response":
            run["input_tokens"] += payload["input_tokens"]
            run["output_tokens"] += payload["output_tokens"]
            run["cost_usd"] += payload["cost_usd"]
        if event_type in FAILURES:
            key = (run_id, payload.get("reason") or "")
            self.failures[key] = self.failures.get(key, 0) + 1


def write_task(log: Log, run_id: str, index: int, system_hash: str) -> None:
    source_id = f"synthetic-{index:07d}"
    key = f"{RECIPE}:{source_id}:v1"
    source = canonical_json({"id": source_id, "age": 20 + index % 60})
    log.add("task_started", {"source_id": source_id, "source_record_blob": log.blob(source)},
            run_id, key)  # fmt: skip
    repaired = index % 10 == 0
    for stage in STAGES:
        attempts = 2 if repaired and stage == "expert" else 1
        for attempt in range(attempts):
            user = f"Write the {stage} for case {index} (attempt {attempt})."
            request_hash = json_hash([key, stage, attempt])
            request_payload = {
                "backend": "openai",
                "base_url": "http://vllm:8000/v1",
                "model": "teacher",
                "params": {"temperature": 0.7, "max_tokens": 1024},
                "messages": [
                    {"role": "system", "content_blob": system_hash},
                    {"role": "user", "content_blob": log.blob(user)},
                ],
                "response_schema": None,
                "request_hash": request_hash,
                "prompt_template": f"consult/{stage}",
                "prompt_template_hash": content_hash(stage),
            }
            request = log.add("llm_request", request_payload, run_id, key, stage, attempt)
            raw = f'{{"stage": "{stage}", "case": {index}, "text": "{"x" * (50 + index % 150)}"}}'
            response_payload = {
                "request_hash": request_hash,
                "raw_output_blob": log.blob(raw),
                "input_tokens": 200 + index % 200,
                "output_tokens": 100 + index % 200,
                "latency_ms": 120.0,
                "finish_reason": "stop",
                "cost_usd": 0.0002,
                "model_reported": "teacher",
            }
            log.add("llm_response", response_payload, run_id, key, stage, attempt, request)
            passed = attempt == attempts - 1
            verdict = {"passed": passed, "errors": [] if passed else ["missing field"],
                       "metrics": {}}  # fmt: skip
            log.add("validation_verdict", verdict, run_id, key, stage, attempt)
            if not passed:
                repair = {"repair_attempt": 1, "errors": ["missing field"]}
                log.add("repair_requested", repair, run_id, key, stage, attempt + 1)
    if index % 13 == 0:
        rejected = {"reason": "unsafe", "errors": [], "fallback_sample_blob": None}
        log.add("sample_rejected", rejected, run_id, key)
        return
    label = LABELS[index % 3]
    sample = canonical_json({"case": index, "label": label})
    digest = content_hash(sample)
    log.blob(sample)
    accepted = {"sample_id": "s-" + short_hash(f"{key}|{digest}"), "content_hash": digest,
                "sample_blob": digest, "label": label}  # fmt: skip
    log.add("sample_accepted", accepted, run_id, key)


def flush(conn: sqlite3.Connection, log: Log) -> None:
    conn.execute("BEGIN")
    queries.execute_many(conn, "insert_events", log.rows)
    conn.executemany("INSERT INTO staged_blobs VALUES (?, ?)", log.blobs.items())
    conn.execute("COMMIT")
    log.rows, log.blobs = [], {}


def generate(path: Path, events: int, runs: int = 10) -> dict[str, float]:
    """Write a warehouse of about ``events`` events at ``path`` (replaced if there)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    partial = path.with_name(path.name + ".partial")
    Warehouse(partial).close()
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("PRAGMA temp_store = FILE")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        " AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("CREATE TEMP TABLE staged_blobs (hash TEXT, content TEXT)")
    started = time.perf_counter()
    log = Log()
    system_hash = log.blob(SYSTEM_PROMPT)
    tasks = max(1, round(events / EVENTS_PER_TASK))
    base_tasks = min(tasks, BASE_TASKS)
    per_run = -(-base_tasks // runs)
    for run_number in range(runs):
        run_id = uuid7()
        started_payload = {"command": "run", "config": {}, "code_version": "bench",
                           "prompt_hashes": {}}  # fmt: skip
        log.add("run_started", started_payload, run_id)
        for index in range(run_number * per_run, min(base_tasks, (run_number + 1) * per_run)):
            write_task(log, run_id, index, system_hash)
            if len(log.rows) >= BATCH_TASKS * EVENTS_PER_TASK:
                flush(conn, log)
        log.add("run_finished", {"status": "completed", "counts": {}, "message": None}, run_id)
        flush(conn, log)
    copies = -(-tasks // base_tasks) - 1
    grow(conn, log, copies)
    loaded = time.perf_counter() - started
    finish(conn, log, indexes)
    conn.close()
    partial.rename(path)
    return {
        "events": log.count,
        "seconds": time.perf_counter() - started,
        "load_seconds": loaded,
        "mb": path.stat().st_size / 1e6,
        "copies": copies,
    }


def grow(conn: sqlite3.Connection, log: Log, copies: int) -> None:
    """Copy the first block ``copies`` times; the per-run sums grow with it."""
    if not copies:
        return
    last_id = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    conn.execute("BEGIN")
    rebuild(conn, "answered_requests")  # of the first block; each copy's hashes follow from it
    conn.execute("CREATE TEMP TABLE block_answers AS SELECT * FROM answered_requests")
    conn.execute("COMMIT")
    for copy in range(1, copies + 1):
        conn.execute("BEGIN")
        conn.execute(COPY_BLOCK, {"copy": copy, "last_id": last_id})
        conn.execute(
            "INSERT INTO answered_requests SELECT request_hash || '-c' || ? FROM block_answers",
            (copy,),
        )
        conn.execute("COMMIT")
    conn.execute("DROP TABLE block_answers")
    log.answers_copied = True
    task_events = conn.execute(
        "SELECT count(*) FROM events WHERE id <= ? AND task_key IS NOT NULL", (last_id,)
    ).fetchone()[0]
    log.count += task_events * copies
    for run in log.totals.values():
        for name in SUMS:
            run[name] *= copies + 1
    log.failures = {key: n * (copies + 1) for key, n in log.failures.items()}


def step(name: str, fn: Callable[..., Any], *args: Any) -> None:
    started = time.perf_counter()
    fn(*args)
    if VERBOSE:
        print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)


def finish(conn: sqlite3.Connection, log: Log, indexes: list[tuple[str, str]]) -> None:
    """Blobs in hash order, the indexes, the derived tables, the chain head; then WAL mode."""
    conn.execute("BEGIN")
    conn.execute(
        "INSERT OR IGNORE INTO blobs (hash, content, size)"
        " SELECT hash, content, length(content) FROM staged_blobs ORDER BY hash"
    )
    conn.execute("DROP TABLE staged_blobs")
    for _, create in indexes:
        step(f"index {create.split()[2]}", conn.execute, create)
    tables = ["sample_index", "task_heads", "status_counts", "sample_counts", "event_counts",
              "task_gate_failures", "gate_rejections"]  # fmt: skip
    if not log.answers_copied:  # a grown warehouse has them already (grow)
        tables.insert(1, "answered_requests")
    for table in tables:
        step(f"derived {table}", rebuild, conn, table)
    queries.execute_many(conn, "projection_add_run_totals", list(log.totals.values()))
    queries.execute_many(
        conn, "projection_add_run_failures", [(*key, n) for key, n in log.failures.items()]
    )
    conn.row_factory = sqlite3.Row
    head = queries.select_one(conn, "chain_head")
    set_head(conn, head, log.prev_hash, log.count)
    conn.execute("COMMIT")
    conn.execute("PRAGMA analysis_limit = 1000")  # statistics from a sample of each index
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
