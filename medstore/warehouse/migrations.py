"""Numbered schema migrations. Applied in order at every entry point; never edit one once released.

Each migration is a function ``mNNN_name(conn)``; its docstring says why it exists.
The views are not migrations: they live in ``sql/views`` and are recreated on open, since
they hold no data. A migration that creates a derived table fills it with that table's one
rebuild (``sql/derived``, see ``derived.py``): derived rows are always computed by the current
rule, which is what a projection of the log should hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from medstore.warehouse.derived import rebuild
from medstore.warehouse.hashing import utc_now

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_event_log(conn: sqlite3.Connection) -> None:
    """The append-only event log, content-addressed blobs, and the head of the hash chain.

    `chain_head` is the one mutable table: it records the last link so that `verify` notices a
    removed final row, which the chain alone cannot show.
    """
    run_script(
        conn,
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            run_id TEXT,
            recipe TEXT,
            task_key TEXT,
            stage TEXT,
            attempt INTEGER,
            event_type TEXT NOT NULL,
            parent_event_id TEXT,
            payload_json TEXT NOT NULL,
            created_utc TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TABLE blobs (
            hash TEXT PRIMARY KEY,
            content TEXT NOT NULL,
            size INTEGER NOT NULL
        );
        CREATE TABLE chain_head (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            last_id INTEGER NOT NULL,
            last_hash TEXT NOT NULL,
            event_count INTEGER NOT NULL
        );
        INSERT INTO chain_head VALUES (1, 0, 'genesis', 0);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;
        CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
            BEGIN SELECT RAISE(ABORT, 'blobs are immutable: UPDATE refused'); END;
        CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
            BEGIN SELECT RAISE(ABORT, 'blobs are immutable: DELETE refused'); END;
        """,
    )


@migration
def m002_lookup_indexes(conn: sqlite3.Connection) -> None:
    """Indexes behind resume (per task), the request cache, sample lookups and per-run summaries."""
    run_script(
        conn,
        """
        CREATE INDEX events_task ON events(recipe, task_key, id);
        CREATE INDEX events_type ON events(event_type, recipe);
        CREATE INDEX events_run ON events(run_id, event_type);
        CREATE INDEX events_parent ON events(parent_event_id) WHERE parent_event_id IS NOT NULL;
        CREATE INDEX events_request_hash
            ON events(json_extract(payload_json, '$.request_hash'))
            WHERE event_type IN ('llm_response', 'cache_replay');
        CREATE INDEX events_sample_id
            ON events(json_extract(payload_json, '$.sample_id'))
            WHERE event_type IN ('sample_accepted', 'review_verdict');
        """,
    )


@migration
def m003_sample_index(conn: sqlite3.Connection) -> None:
    """A derived index of accepted samples, read by the `samples` view.

    Deriving "the current accepted sample of each task, first of its exact copies, minus reviewer
    rejects" with window functions costs a pass over every accepted event's payload: about 1.5 s
    at 100,000 samples, and a Datasette table page makes five such passes (rows, count, three
    facets). The writer keeps this table in step inside its own transaction
    (medstore/projections.py), so it is never ahead of or behind the log. It is derived and
    mutable (this migration rebuilds it from the log); the events table stays append-only.
    """
    run_script(
        conn,
        """
        CREATE TABLE sample_index (
            accepted_id INTEGER PRIMARY KEY,  -- events.id of the sample_accepted event
            accepted_event_id TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            recipe TEXT,
            task_key TEXT,
            label TEXT,
            run_id TEXT,
            created_utc TEXT NOT NULL,
            content_hash TEXT,
            sample_blob TEXT,
            is_current INTEGER NOT NULL,  -- the latest outcome of its task
            is_copy INTEGER NOT NULL,  -- an earlier current sample has the same content
            review_verdict TEXT,  -- the latest reviewer verdict on its sample_id
            review_note TEXT
        );
        CREATE INDEX sample_index_task ON sample_index(recipe, task_key);
        CREATE INDEX sample_index_content ON sample_index(recipe, content_hash);
        CREATE INDEX sample_index_sample_id ON sample_index(sample_id);
        -- Covers the dataset's count and its facets (recipe, label, review) without the table.
        CREATE INDEX sample_index_dataset
            ON sample_index(recipe, label, review_verdict, accepted_id)
            WHERE is_current AND NOT is_copy;
        """,
    )
    rebuild(conn, "sample_index")


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: unlike executescript, this keeps the open transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement.strip()[:80]}")


def ensure_migrations_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)"
    )


def applied(conn: sqlite3.Connection) -> set[str]:
    ensure_migrations_table(conn)
    return {row[0] for row in conn.execute("SELECT name FROM _migrations")}


def pending_migrations(conn: sqlite3.Connection) -> list[str]:
    """The migrations this file lacks (read-only: no table is created to find out)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    done = (
        {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        if "_migrations" in tables
        else set()
    )
    return [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the names applied."""
    done = applied(conn)
    newly: list[str] = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if fn.__name__ not in applied(conn):  # another process may have won the race
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_utc) VALUES (?, ?)",
                    (fn.__name__, utc_now()),
                )
                newly.append(fn.__name__)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return newly


@migration
def m004_task_head_index(conn: sqlite3.Connection) -> None:
    """A covering index over the events that decide a task's state, for `task_state`.

    Resume and `status` ask for every task's latest state; at 100,000 tasks (1M events) a window
    over those events' rows took 3 s. With this index the latest event of each task is found
    from the index alone (a max(id) per task), and only those rows are read.
    """
    run_script(
        conn,
        """
        CREATE INDEX events_task_head
            ON events(recipe, task_key, id, event_type, run_id, created_utc)
            WHERE event_type IN (
                'task_started', 'sample_accepted', 'sample_rejected', 'task_failed'
            );
        """,
    )


@migration
def m005_run_totals(conn: sqlite3.Connection) -> None:
    """Derived per-run totals and the set of answered request hashes.

    `run_summary` (read by `status` on every call) summed over every event of every run: 3.6 s
    at 1M events. Resume read every response's payload for its request hash: 1.4 s. The writer
    now keeps per-run counters, failures by reason and the answered hashes in step with the log,
    in its own transaction (medstore/projections.py; a merge, which inserts events, too). These
    tables are derived and mutable; this migration rebuilds them from the log.
    """
    run_script(
        conn,
        """
        CREATE TABLE run_totals (
            run_id TEXT PRIMARY KEY,
            recipe TEXT,  -- of its run_started event
            started_utc TEXT NOT NULL,  -- its first event
            finished_utc TEXT,
            status TEXT,  -- of its run_finished event; NULL while running or after a crash
            tasks_started INTEGER NOT NULL,
            accepted INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            source_skipped INTEGER NOT NULL,
            llm_requests INTEGER NOT NULL,
            llm_responses INTEGER NOT NULL,
            cache_replays INTEGER NOT NULL,
            llm_errors INTEGER NOT NULL,
            repairs INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL
        );
        CREATE TABLE run_failures (
            run_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (run_id, reason)
        ) WITHOUT ROWID;
        CREATE TABLE answered_requests (request_hash TEXT PRIMARY KEY) WITHOUT ROWID;
        """,
    )
    for table in ("run_totals", "run_failures", "answered_requests"):
        rebuild(conn, table)


@migration
def m006_projections_in_the_writer(conn: sqlite3.Connection) -> None:
    """The writer keeps the derived tables (medstore/projections.py); drop the triggers that
    warehouses made before it still carry (m003 and m005 once created them). Any AFTER INSERT
    trigger on `events`, even one whose WHEN is false, makes SQLite copy every new row for NEW:
    appends ran at less than half their speed."""
    for trigger in (
        "sample_index_outcome",
        "sample_index_review",
        "run_totals_count",
        "run_failures_count",
        "answered_requests_add",
    ):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")


@migration
def m007_chain_signature(conn: sqlite3.Connection) -> None:
    """An HMAC of the chain head (medstore/warehouse/chain.py): with $MEDSTORE_CHAIN_KEY set,
    a history rewritten and re-hashed by someone without the key no longer verifies."""
    conn.execute("ALTER TABLE chain_head ADD COLUMN signature TEXT")


@migration
def m008_task_heads(conn: sqlite3.Connection) -> None:
    """A derived table of each task's latest deciding event, read by `task_state`, resume and
    `status`.

    At 10M events (~900,000 tasks) `task_state` computed a max(id) per task over the covering
    index m004 made: resume (every finished task of the recipe loaded into memory) and `status`
    (states counted per recipe) each paid that pass, several seconds, and resume's memory grew
    with the warehouse. The writer now keeps one row per task in step with the log (in its own
    transaction, medstore/warehouse/projections.py): resume asks it by key for the source's
    tasks only (m009 counts them for `status`).
    """
    run_script(
        conn,
        """
        CREATE TABLE task_heads (
            recipe TEXT NOT NULL,
            task_key TEXT NOT NULL,
            head_id INTEGER NOT NULL,  -- events.id of the task's latest deciding event
            state TEXT NOT NULL,  -- accepted | rejected | failed | pending
            reason TEXT,
            sample_id TEXT,
            run_id TEXT,
            updated_utc TEXT NOT NULL,
            validator_version TEXT,  -- the validator set that judged a finished task
            PRIMARY KEY (recipe, task_key)
        ) WITHOUT ROWID;
        """,
    )
    rebuild(conn, "task_heads")


@migration
def m009_status_counts(conn: sqlite3.Connection) -> None:
    """Tasks per recipe, state and reason, and samples per recipe, counted as they change.

    Even over covering indexes, `status` counted every task and every sample: at 10M events
    (~900,000 tasks) that was seconds, growing with the warehouse. These counts are kept by
    triggers on the two derived tables they count (`task_heads`, `sample_index`), whose rows are
    small: unlike a trigger on `events` (see m006), they copy no payloads. Rebuilt from those
    tables (sql/derived/status_counts.sql), which verify checks against the log in turn.
    """
    in_dataset = (
        "{0}.is_current AND NOT {0}.is_copy AND coalesce({0}.review_verdict, '') != 'reject'"
    )
    add = (
        "INSERT INTO status_counts VALUES ({recipe}, {what}, {reason}, {n})"
        " ON CONFLICT DO UPDATE SET n = n + excluded.n;"
        " DELETE FROM status_counts WHERE n = 0;"
    )
    head_old = add.format(recipe="OLD.recipe", what="OLD.state",
                          reason="coalesce(OLD.reason, '')", n="-1")  # fmt: skip
    head_new = add.format(recipe="NEW.recipe", what="NEW.state",
                          reason="coalesce(NEW.reason, '')", n="1")  # fmt: skip
    sample_delta = add.format(
        recipe="coalesce(NEW.recipe, '')", what="'samples'", reason="''",
        n=f"({in_dataset.format('NEW')}) - ({in_dataset.format('OLD')})",
    )  # fmt: skip
    sample_new = add.format(recipe="coalesce(NEW.recipe, '')", what="'samples'", reason="''",
                            n=f"({in_dataset.format('NEW')})")  # fmt: skip
    sample_old = add.format(recipe="coalesce(OLD.recipe, '')", what="'samples'", reason="''",
                            n=f"-({in_dataset.format('OLD')})")  # fmt: skip
    run_script(
        conn,
        f"""
        CREATE TABLE status_counts (
            recipe TEXT NOT NULL,
            what TEXT NOT NULL,  -- a task state (accepted, rejected, failed, pending) or samples
            reason TEXT NOT NULL,  -- of rejected and failed tasks; '' otherwise
            n INTEGER NOT NULL,
            PRIMARY KEY (recipe, what, reason)
        ) WITHOUT ROWID;
        CREATE TRIGGER task_heads_count_insert AFTER INSERT ON task_heads
            BEGIN {head_new} END;
        CREATE TRIGGER task_heads_count_update AFTER UPDATE ON task_heads
            BEGIN {head_old} {head_new} END;
        CREATE TRIGGER task_heads_count_delete AFTER DELETE ON task_heads
            BEGIN {head_old} END;
        CREATE TRIGGER sample_index_count_insert AFTER INSERT ON sample_index
            BEGIN {sample_new} END;
        CREATE TRIGGER sample_index_count_update AFTER UPDATE ON sample_index
            BEGIN {sample_delta} END;
        CREATE TRIGGER sample_index_count_delete AFTER DELETE ON sample_index
            BEGIN {sample_old} END;
        """,
    )
    rebuild(conn, "status_counts")


@migration
def m010_task_heads_validator_version(conn: sqlite3.Connection) -> None:
    """`task_heads.validator_version` on warehouses whose m008 predates it.

    m008 gained the column after warehouses had been made with it (among them the cached
    benchmark warehouses of bench_scale.py): on those, `task_state` and the writer's task-head
    projection fail with "no such column: validator_version". Add it and fill it from each
    task's head event, as the rebuild (sql/derived/task_heads.sql) does.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(task_heads)")}
    if "validator_version" in columns:
        return
    conn.execute("ALTER TABLE task_heads ADD COLUMN validator_version TEXT")
    conn.execute(
        "UPDATE task_heads SET validator_version = ("
        " SELECT json_extract(payload_json, '$.validator_version') FROM events WHERE id = head_id)"
    )


@migration
def m011_facet_counts(conn: sqlite3.Connection) -> None:
    """Rows per value of the columns `serve` facets on, for its `samples` and `events` pages.

    At 10M events a Datasette table page counted every row of its table or view (~1 s) and ran
    one GROUP BY per facet (each stopped at the facet time limit): 1.3-3.4 s a page. `serve`
    now answers an unfiltered page's count and facets from small tables (medstore/serve/
    kept_counts.py): `task_state`'s from status_counts (m009), `samples`' from `sample_counts`
    (the dataset's samples per recipe, label and review verdict, kept by triggers on
    sample_index like m009's) and `events`' from `event_counts` (events per recipe and type,
    kept by the writer: a trigger on `events` would slow appends, see m006).
    """
    in_dataset = (
        "{0}.is_current AND NOT {0}.is_copy AND coalesce({0}.review_verdict, '') != 'reject'"
    )
    same = "recipe IS {0}.recipe AND label IS {0}.label AND review_verdict IS {0}.review_verdict"
    add = (
        "UPDATE sample_counts SET n = n + 1 WHERE {same} AND ({inside});"
        " INSERT INTO sample_counts SELECT {0}.recipe, {0}.label, {0}.review_verdict, 1"
        " WHERE ({inside}) AND NOT EXISTS (SELECT 1 FROM sample_counts WHERE {same});"
    )
    remove = (
        "UPDATE sample_counts SET n = n - 1 WHERE {same} AND ({inside});"
        " DELETE FROM sample_counts WHERE {same} AND n = 0;"
    )
    new, old = ({"same": same.format(p), "inside": in_dataset.format(p)} for p in ("NEW", "OLD"))
    moved = " OR ".join(
        [f"({in_dataset.format('OLD')}) IS NOT ({in_dataset.format('NEW')})"]
        + [f"OLD.{c} IS NOT NEW.{c}" for c in ("recipe", "label", "review_verdict")]
    )
    run_script(
        conn,
        f"""
        CREATE TABLE sample_counts (
            recipe TEXT, label TEXT, review_verdict TEXT,  -- NULL where the samples' is
            n INTEGER NOT NULL
        );
        CREATE INDEX sample_counts_key ON sample_counts(recipe, label, review_verdict);
        CREATE TABLE event_counts (
            recipe TEXT NOT NULL,  -- '' for events of no recipe (no recipe is named '')
            event_type TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (recipe, event_type)
        ) WITHOUT ROWID;
        CREATE TRIGGER sample_index_facets_insert AFTER INSERT ON sample_index
            BEGIN {add.format("NEW", **new)} END;
        CREATE TRIGGER sample_index_facets_update AFTER UPDATE ON sample_index WHEN {moved}
            BEGIN {remove.format("OLD", **old)} {add.format("NEW", **new)} END;
        CREATE TRIGGER sample_index_facets_delete AFTER DELETE ON sample_index
            BEGIN {remove.format("OLD", **old)} END;
        """,
    )
    rebuild(conn, "sample_counts")
    rebuild(conn, "event_counts")


@migration
def m012_gate_rejections(conn: sqlite3.Connection) -> None:
    """The content gates each rejected task failed, and rejected tasks per recipe and gate.

    `status` joined every rejected task with all its verdict events and their gates: 13 s at
    10M events. `task_gate_failures` holds the gates of a rejected task's verdicts (one row per
    task and gate), filled when its `task_heads` row becomes rejected and emptied when it stops
    being so (redone, accepted, revalidated); `gate_rejections` counts it per recipe and gate.
    Both are kept by triggers on those small tables (none on `events`, see m006); the lookup of
    a task's verdicts goes by the task index (`+event_type` keeps SQLite off `events_type`).
    """
    verdict_gates = (
        "SELECT DISTINCT NEW.recipe, NEW.task_key, json_extract(g.value, '$.gate')"
        " FROM events e, json_each(e.payload_json, '$.gates') g"
        " WHERE e.recipe = NEW.recipe AND e.task_key = NEW.task_key"
        " AND +e.event_type = 'validation_verdict' AND json_extract(g.value, '$.gate') IS NOT NULL"
    )
    enter = f"INSERT OR IGNORE INTO task_gate_failures {verdict_gates} AND NEW.state = 'rejected';"
    leave = (
        "DELETE FROM task_gate_failures WHERE OLD.state = 'rejected'"
        " AND recipe = OLD.recipe AND task_key = OLD.task_key;"
    )
    count = (
        "INSERT INTO gate_rejections VALUES ({0}.recipe, {0}.gate, {1})"
        " ON CONFLICT DO UPDATE SET n = n + excluded.n;"
        " DELETE FROM gate_rejections WHERE n = 0;"
    )
    run_script(
        conn,
        f"""
        CREATE TABLE task_gate_failures (
            recipe TEXT NOT NULL,
            task_key TEXT NOT NULL,  -- a task whose head (task_heads) is a rejection
            gate TEXT NOT NULL,  -- a gate one of its verdict events names
            PRIMARY KEY (recipe, task_key, gate)
        ) WITHOUT ROWID;
        CREATE TABLE gate_rejections (
            recipe TEXT NOT NULL,
            gate TEXT NOT NULL,
            n INTEGER NOT NULL,  -- rejected tasks of the recipe that failed the gate
            PRIMARY KEY (recipe, gate)
        ) WITHOUT ROWID;
        CREATE TRIGGER task_heads_gates_insert AFTER INSERT ON task_heads
            WHEN NEW.state = 'rejected' BEGIN {enter} END;
        CREATE TRIGGER task_heads_gates_update AFTER UPDATE ON task_heads
            WHEN OLD.state = 'rejected' OR NEW.state = 'rejected' BEGIN {leave} {enter} END;
        CREATE TRIGGER task_heads_gates_delete AFTER DELETE ON task_heads
            WHEN OLD.state = 'rejected' BEGIN {leave} END;
        CREATE TRIGGER task_gate_failures_count_insert AFTER INSERT ON task_gate_failures
            BEGIN {count.format("NEW", 1)} END;
        CREATE TRIGGER task_gate_failures_count_delete AFTER DELETE ON task_gate_failures
            BEGIN {count.format("OLD", -1)} END;
        """,
    )
    rebuild(conn, "task_gate_failures")
    rebuild(conn, "gate_rejections")
