"""The warehouse: open + migrate, append events (one writer, batched commits), blobs, verify."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medstore.resources import resource_dir
from medstore.warehouse import queries
from medstore.warehouse.chain import ChainKeyMissing, head_signature, link_hash
from medstore.warehouse.events import Envelope, Event, EventRecord, make_record
from medstore.warehouse.hashing import canonical_json
from medstore.warehouse.migrations import migrate
from medstore.warehouse.projections import project

if TYPE_CHECKING:
    from medstore.warehouse.verify import VerifyReport
    from medstore.warehouse.writer import BatchWriter

log = logging.getLogger(__name__)

DEFAULT_DB = "warehouse.db"
FINISHED_CHUNK = 50_000  # task keys per lookup of finished tasks
EVENT_COLUMNS = (
    "event_id",
    "run_id",
    "recipe",
    "task_key",
    "stage",
    "attempt",
    "event_type",
    "parent_event_id",
    "payload_json",
    "created_utc",
)


class WarehouseError(Exception):
    """A warehouse that cannot be opened or written, with a one-line reason."""


def default_db_path() -> str:
    return os.environ.get("MEDSTORE_DB") or DEFAULT_DB


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            Path(path).resolve().as_uri() + "?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    # 64 MB of page cache: the log's indexes take random keys (hashes, ids), and inserts into
    # them stay in memory instead of re-reading pages; this nearly doubles the append rate.
    conn.execute("PRAGMA cache_size = -65536")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint every ~40 MB of WAL rather than 4 MB: fewer, larger copies back.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
    return conn


def view_files() -> list[Path]:
    return sorted(resource_dir("sql").joinpath("views").glob("*.sql"))


def install_views(conn: sqlite3.Connection, *, temporary: bool = False) -> None:
    """(Re)create the views whose definition changed; views hold no data, so this is cheap.

    ``temporary``: as TEMP views of this connection only, for a reader that writes nothing.
    """
    catalogue = "sqlite_temp_master" if temporary else "sqlite_master"
    existing = {
        row["name"]: row["sql"]
        for row in conn.execute(f"SELECT name, sql FROM {catalogue} WHERE type = 'view'")
    }
    pending = []
    for path in view_files():
        name = path.stem.split("_", 1)[1] if path.stem[:2].isdigit() else path.stem
        body = path.read_text()
        create = body[body.index("CREATE VIEW") :].strip().rstrip(";")
        if temporary:
            create = create.replace("CREATE VIEW", "CREATE TEMP VIEW", 1)
        if existing.get(name) != create:
            pending.append((name, create))
    if not pending:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Later views may depend on earlier ones: drop all changed ones first, then create in order.
        for name, _ in reversed(pending):
            conn.execute(f'DROP VIEW IF EXISTS {"temp." if temporary else ""}"{name}"')
        for _, create in pending:
            conn.execute(create)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def create_warehouse(path: Path) -> None:
    """A new, fully migrated warehouse at ``path``, or nothing there at all."""
    staging = path.with_name(f".{path.name}.creating-{os.getpid()}")
    try:
        conn = connect(staging)
        try:
            migrate(conn)
            install_views(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        os.replace(staging, path)
    finally:
        for leftover in (staging, Path(f"{staging}-wal"), Path(f"{staging}-shm")):
            leftover.unlink(missing_ok=True)


def check_is_warehouse(
    conn: sqlite3.Connection, path: str, *, migrations_may_be_pending: bool = False
) -> None:
    """Refuse a file that is not a medstore warehouse, or (for a reader) one whose schema is
    older than this code, before anything reads or writes it."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"events", "blobs", "chain_head", "_migrations"} <= tables:
        raise WarehouseError(f"{path}: not a medstore warehouse (it has no event log)")
    if migrations_may_be_pending:
        return
    from medstore.warehouse.migrations import pending_migrations

    pending = pending_migrations(conn)
    if pending:
        raise WarehouseError(
            f"{path}: written by an older medstore ({len(pending)} migration(s) pending, from "
            f"{pending[0]}): run `python cli.py migrate --db {path}` first"
        )


def append_records(conn: sqlite3.Connection, records: list[EventRecord]) -> None:
    """Write records in one transaction, extending the hash chain. Safe across processes."""
    with transaction(conn):
        write_records(conn, records)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (a full disk) may have rolled back already: a second ROLLBACK would
        # replace the real error with "cannot rollback - no transaction is active".
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write_records(conn: sqlite3.Connection, records: list[EventRecord]) -> None:
    """Append records inside the caller's transaction: chain, blobs, projections, head."""
    log = LogAppend(conn)
    log.add(records)
    log.finish()


class LogAppend:
    """Appends inside one transaction: the chain head is read once, each record linked as it
    is added, rows written (blobs, projections) on ``flush``, the head set once by ``finish``.
    The writer adds a whole batch this way, flushing only when a claim must see the rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.head = queries.select_one(conn, "chain_head")
        self.prev_hash: str = self.head["last_hash"]
        self.count: int = self.head["event_count"]
        self.rows: list[tuple[Any, ...]] = []
        self.blobs: dict[str, str] = {}

    def add(self, records: list[EventRecord]) -> None:
        prev_hash = self.prev_hash
        for record in records:
            self.blobs.update(record.blobs)
            env = record.envelope
            fields = (
                record.event_id,
                env.run_id,
                env.recipe,
                env.task_key,
                env.stage,
                env.attempt,
                record.event_type,
                env.parent_event_id,
                canonical_json(record.payload),
                record.created_utc,
            )
            this_hash = link_hash(prev_hash, fields)
            self.rows.append((*fields, prev_hash, this_hash))
            prev_hash = this_hash
        self.prev_hash = prev_hash
        self.count += len(records)

    def flush(self) -> None:
        """Write the rows added so far (and their blobs and projections)."""
        if self.blobs:
            rows = [(h, text, len(text)) for h, text in self.blobs.items()]
            queries.execute_many(self.conn, "insert_blobs", rows)
            self.blobs = {}
        if self.rows:
            queries.execute_many(self.conn, "insert_events", self.rows)
            project(self.conn, self.rows)
            self.rows = []

    def finish(self) -> None:
        """Flush, then record the new head (if anything was added)."""
        self.flush()
        if self.count != self.head["event_count"]:
            set_head(self.conn, self.head, self.prev_hash, self.count)


def set_head(
    conn: sqlite3.Connection, old_head: dict[str, Any], last_hash: str, event_count: int
) -> None:
    """Record the chain's new last link (and sign it when $MEDSTORE_CHAIN_KEY is set)."""
    last_id = queries.select_value(conn, "last_event_id") or 0
    if "signature" not in old_head:  # a warehouse from before m007
        queries.execute(
            conn,
            "set_unsigned_chain_head",
            last_id=last_id,
            last_hash=last_hash,
            event_count=event_count,
        )
        return
    try:
        signature = head_signature(old_head.get("signature"), last_id, last_hash, event_count)
    except ChainKeyMissing as exc:
        raise WarehouseError(str(exc)) from exc
    queries.execute(
        conn,
        "set_chain_head",
        last_id=last_id,
        last_hash=last_hash,
        event_count=event_count,
        signature=signature,
    )


def describe_sqlite_error(exc: BaseException, path: str) -> str:
    """One line for a failed database operation, saying what the cause really was."""
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if "readonly" in text or "read-only" in text:
        return f"{path}: the warehouse is read-only ({text})"
    if (
        name == "SQLITE_FULL"
        or "full" in text
        or (name.startswith("SQLITE_IOERR") and disk_full(path))
    ):
        return (
            f"{path}: the disk is full ({text}); nothing half-written, resume once space is freed"
        )
    return f"{path}: {text}"


def disk_full(path: str) -> bool:
    """An I/O error on a filesystem with no room left (SQLite reports ENOSPC on its shared
    memory or WAL as a plain "disk I/O error")."""
    try:
        return shutil.disk_usage(Path(path).resolve().parent).free < 1_000_000
    except OSError:
        return False


class Warehouse:
    """A warehouse file: migrated on open, views installed, read from here, written via append.

    ``readonly=True`` writes nothing at all: the file must already be a medstore warehouse
    with every migration applied (unless ``require_current=False``), and the current views are
    installed as TEMP views of the connection (which shadow the file's own), so a reader always
    sees this code's definitions.
    A new file is created under a temporary name and renamed into place once its schema is
    complete, so a failure (a full disk) never leaves a half-initialised warehouse behind.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        readonly: bool = False,
        require_current: bool = True,
    ) -> None:
        self.path = str(path or default_db_path())
        exists = self.path == ":memory:" or Path(self.path).exists()
        if readonly and not exists:
            raise WarehouseError(f"{self.path}: no such warehouse")
        try:
            if not exists:
                create_warehouse(Path(self.path))
            elif not readonly and self.path != ":memory:" and Path(self.path).stat().st_size:
                # Checked before a writer touches it: even switching to WAL is a write.
                probe = connect(self.path, readonly=True)
                try:
                    check_is_warehouse(probe, self.path, migrations_may_be_pending=True)
                finally:
                    probe.close()
            self.conn = connect(self.path, readonly=readonly)
            if readonly:
                check_is_warehouse(
                    self.conn, self.path, migrations_may_be_pending=not require_current
                )
                install_views(self.conn, temporary=True)
            else:
                migrate(self.conn)
                install_views(self.conn)
        except sqlite3.DatabaseError as exc:
            raise WarehouseError(describe_sqlite_error(exc, self.path)) from exc

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing ------------------------------------------------------------------------------------
    def append(self, events: Iterable[tuple[Event, Envelope]]) -> list[EventRecord]:
        records = [make_record(event, envelope) for event, envelope in events]
        try:
            append_records(self.conn, records)
        except sqlite3.DatabaseError as exc:
            raise WarehouseError(describe_sqlite_error(exc, self.path)) from exc
        return records

    def writer(self) -> BatchWriter:
        from medstore.warehouse.writer import BatchWriter

        return BatchWriter(self.path)

    # reading ------------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def select(self, name: str, /, **params: Any) -> list[dict[str, Any]]:
        """The rows of a named query (``sql/queries``)."""
        return queries.select(self.conn, name, **params)

    def select_one(self, name: str, /, **params: Any) -> dict[str, Any] | None:
        return queries.select_one(self.conn, name, **params)

    def select_value(self, name: str, /, **params: Any) -> Any:
        return queries.select_value(self.conn, name, **params)

    def blob(self, digest: str | None) -> str | None:
        if digest is None:
            return None
        return queries.select_value(self.conn, "blob", hash=digest)

    def messages(self, stored: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": self.blob(m["content_blob"]) or ""} for m in stored]

    def finished_tasks(self, recipe: str, task_keys: Iterable[str]) -> dict[str, str | None]:
        """Which of ``task_keys`` are finished (accepted or rejected), with the validator version
        their latest verdict was judged under: looked up by key, so the cost is that of the keys
        asked about, whatever the warehouse's size."""
        keys = list(task_keys)
        finished: dict[str, str | None] = {}
        for offset in range(0, len(keys), FINISHED_CHUNK):
            chunk = json.dumps(keys[offset : offset + FINISHED_CHUNK])
            rows = self.conn.execute(
                queries.sql("finished_tasks"), {"recipe": recipe, "task_keys": chunk}
            )
            finished.update((row[0], row[1]) for row in rows)
        return finished

    def answered_request_hashes(self) -> set[str]:
        """Hashes of every request the log holds an answer to (see warehouse/projections.py)."""
        return {row["request_hash"] for row in self.select("answered_request_hashes")}

    def cached_response(self, request_hash: str) -> dict[str, Any] | None:
        """The latest successful response to an identical request, if the log has one."""
        row = self.select_one("cached_response", request_hash=request_hash)
        if row is None:
            return None
        payload = json.loads(row["payload_json"])
        return {
            "event_id": row["event_id"],
            "raw_output": self.blob(payload["raw_output_blob"]),
            "payload": payload,
        }

    # integrity ----------------------------------------------------------------------------------
    def verify(self, *, expect_head: str | None = None) -> VerifyReport:
        """Recompute the chain, its signature, the blobs and the derived tables."""
        from medstore.warehouse.verify import verify_warehouse

        return verify_warehouse(self, expect_head=expect_head)
