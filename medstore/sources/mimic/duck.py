"""MIMIC-IV in DuckDB: find the distributed files, check their columns, and read them once into a
cache whose packet tables (the views in sql/mimic/NN_*.sql, materialised) answer per-admission
queries fast; the queries Python runs on them are named in sql/mimic/queries.sql.

The cache is one DuckDB file per state of the source files, keyed by their paths, sizes and
mtimes and by the SQL that shapes them: a changed file or view builds a new one (and removes
the stale one); an unchanged source opens the existing file read-only. The cache holds
credentialed data, so it lives under the user's cache folder (``$MEDSTORE_MIMIC_CACHE`` or
``~/.cache/medstore/mimic``), never in the project.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from medstore.resources import resource_dir
from medstore.sources.mimic import queries
from medstore.sources.mimic.schema import NOTE_MODULE, TABLES, Table
from medstore.warehouse.hashing import json_hash, short_hash

log = logging.getLogger(__name__)

# Bump when the way tables are loaded changes (the SQL files are hashed into the key anyway).
CACHE_FORMAT = "1"
CACHE_ENV = "MEDSTORE_MIMIC_CACHE"


class MimicDataError(Exception):
    """The MIMIC files cannot be used: one line naming the folder, file, column or id."""


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medstore" / "mimic"


def view_files() -> list[Path]:
    """The view definitions, one per numbered file (queries.sql beside them is not a view)."""
    return sorted(resource_dir("sql").joinpath("mimic").glob("[0-9][0-9]_*.sql"))


def view_name(path: Path) -> str:
    return path.stem.split("_", 1)[1] if path.stem[:2].isdigit() else path.stem


@dataclass(frozen=True)
class SourceFile:
    table: Table
    path: Path
    size: int
    mtime_ns: int

    @property
    def label(self) -> str:
        """How messages name the file: the path as the user gave it."""
        return str(self.path)


def locate_tables(mimic_dir: str | Path, note_dir: str | Path | None = None) -> list[SourceFile]:
    """Every table the packet needs, as distributed (``.csv.gz``, or plain ``.csv``).

    ``note_dir`` is the MIMIC-IV-Note root (holding ``note/``) or the ``note`` folder itself;
    it defaults to ``mimic_dir``, the layout ``make-demo`` writes.
    """
    roots = {
        "hosp": Path(mimic_dir),
        "icu": Path(mimic_dir),
        NOTE_MODULE: Path(note_dir or mimic_dir),
    }
    for option, root in (("--mimic-dir", roots["hosp"]), ("--note-dir", roots[NOTE_MODULE])):
        if not root.is_dir():
            raise MimicDataError(f"{option} {root}: no such folder")
    found = []
    for table in TABLES.values():
        root = roots[table.module]
        folders = [root / table.module]
        if table.module == NOTE_MODULE:
            folders.append(root)  # --note-dir may point at note/ itself
        candidates = [
            folder / f"{table.name}{suffix}" for folder in folders for suffix in (".csv.gz", ".csv")
        ]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise MimicDataError(
                f"{candidates[0]}: missing (MIMIC-IV table {table.qualified}; "
                "a plain .csv is accepted too)"
            )
        stat = path.stat()
        found.append(SourceFile(table, path, stat.st_size, stat.st_mtime_ns))
    return found


def read_header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            first = handle.readline()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise MimicDataError(f"{path}: cannot be read as CSV ({exc})") from exc
    if not first.strip():
        raise MimicDataError(f"{path}: empty file, expected a header row")
    return next(csv.reader(io.StringIO(first)))


def check_columns(source: SourceFile) -> None:
    header = [name.strip().lower() for name in read_header(source.path)]
    missing = [name for name in source.table.column_names if name not in header]
    if missing:
        raise MimicDataError(
            f"{source.label}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (MIMIC-IV {source.table.qualified})"
        )


def cache_key(sources: Sequence[SourceFile]) -> str:
    return json_hash(
        {
            "format": CACHE_FORMAT,
            "files": [
                [s.table.qualified, str(s.path.resolve()), s.size, s.mtime_ns] for s in sources
            ],
            "views": {path.name: path.read_text(encoding="utf-8") for path in view_files()},
        }
    )


class MimicDB:
    """A read-only connection to the cache of one MIMIC source, built first if needed."""

    def __init__(
        self,
        mimic_dir: str | Path,
        note_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.sources = locate_tables(mimic_dir, note_dir)
        self.key = cache_key(self.sources)
        self.fingerprint = self.key.split(":", 1)[1][:16]
        folder = Path(cache_dir) if cache_dir else default_cache_dir()
        family = short_hash("|".join(str(s.path.resolve().parent) for s in self.sources), 12)
        self.family = f"mimic-{family}-"
        self.path = folder / f"{self.family}{self.fingerprint}.duckdb"
        self.cache_hit = self.path.exists()
        self.build_seconds = 0.0
        if not self.cache_hit:
            started = time.perf_counter()
            self.build()
            self.build_seconds = time.perf_counter() - started
        self.conn = duckdb.connect(str(self.path), read_only=True)

    @property
    def files(self) -> dict[str, SourceFile]:
        return {source.table.qualified: source for source in self.sources}

    def build(self) -> None:
        """Read every table once, install the views, materialise them sorted by admission."""
        for source in self.sources:
            check_columns(source)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.partial-{os.getpid()}")
        partial.unlink(missing_ok=True)
        log.info("building the MIMIC cache %s", self.path)
        try:
            conn = duckdb.connect(str(partial))
            try:
                for source in self.sources:
                    load_table(conn, source)
                conn.execute("CREATE SCHEMA packet")
                for path in view_files():
                    body = path.read_text(encoding="utf-8")
                    conn.execute(body[body.index("CREATE VIEW") :])
                    name = view_name(path)
                    order = "hadm_id, row_order" if name.startswith("packet_") else "1"
                    conn.execute(
                        f"CREATE TABLE packet.{name} AS SELECT * FROM main.{name} ORDER BY {order}"
                    )
            finally:
                conn.close()
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        for stale in self.path.parent.glob(f"{self.family}*.duckdb"):
            if stale != self.path:
                with contextlib.suppress(OSError):  # another process may hold it open
                    stale.unlink()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return as_dicts(self.conn.execute(sql, list(params)))

    def select(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """The rows of a named query (``sql/mimic/queries.sql``)."""
        return as_dicts(self.conn.execute(queries.sql(name), params))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> MimicDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """The source files as recorded in events: path, size and mtime of each table."""
        return {
            source.table.qualified: {
                "path": str(source.path),
                "size": source.size,
                "mtime_ns": source.mtime_ns,
            }
            for source in self.sources
        }


def as_dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def load_table(conn: duckdb.DuckDBPyConnection, source: SourceFile) -> None:
    """One table from its CSV: every field read as text, then cast by name to its official type.

    Reading by name (not position) accepts files with extra or reordered columns; empty fields,
    quoted or not, are NULL as in the official loaders.
    """
    table = source.table
    columns = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in table.columns)
    order = " ORDER BY hadm_id" if "hadm_id" in table.column_names else ""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.module}")
    try:
        conn.execute(
            f"CREATE TABLE {table.module}.{table.name} AS SELECT {columns} FROM read_csv(?,"
            " header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"')"
            f"{order}",
            [str(source.path)],
        )
    except duckdb.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        raise MimicDataError(f"{source.label}: cannot be loaded: {reason}") from exc
