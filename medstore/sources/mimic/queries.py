"""Named DuckDB queries over the MIMIC cache, in ``sql/mimic/queries.sql`` (aiosql's format, as
``sql/queries`` is for SQLite).

aiosql only parses the file: it names each query and spells its ``:name`` parameters the DuckDB
way (``$name``). ``MimicDB.select`` runs the text on its own read-only connection with the
parameters as a dict, mirroring ``medstore.warehouse.queries``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import aiosql

from medstore.resources import resource_dir


def queries_file() -> Path:
    return resource_dir("sql") / "mimic" / "queries.sql"


@cache
def named() -> Any:
    """Every named MIMIC query, parsed once per process."""
    return aiosql.from_path(queries_file(), "duckdb", mandatory_parameters=False)


@cache
def sql(name: str) -> str:
    """The text of a named MIMIC query."""
    try:
        return getattr(named(), name).sql
    except AttributeError:
        raise KeyError(f"no query named {name!r} in {queries_file()}") from None
