"""`serve`: Datasette on a warehouse, with generated metadata, canned queries and our plugin.

Datasette opens the warehouse read-only (``mode=ro``) over WAL, so serving never blocks a run
writing to the same file and every page shows the events committed so far. The only writes are
reviewer verdicts (through ``medstore.warehouse.review``, short transactions) and the derived
search index (``medstore.serve.search``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path

from datasette.app import Datasette

from medstore.serve.metadata import database_name
from medstore.serve.search import refresh_search_index
from medstore.warehouse.store import Warehouse

log = logging.getLogger(__name__)


def prepare_warehouse(db_path: str | Path) -> None:
    """Check it is a current warehouse (nothing is migrated: an older one is refused with the
    command that updates it), then bring the derived search index up to date: with reviewer
    verdicts, the only thing `serve` writes."""
    Warehouse(db_path, readonly=True).close()
    refresh_search_index(db_path)


def make_datasette(
    db_path: str | Path, *, review_token: str | None = None, require_login: bool = False
) -> Datasette:
    """A Datasette instance on the warehouse with the medstore plugin configured for it."""
    from medstore.serve import plugin

    plugin.register()
    path = str(db_path)
    prepare_warehouse(path)
    database = database_name(path)
    datasette = Datasette(
        files=[path],
        settings={
            "suggest_facets": False,  # each suggestion re-evaluates a view: slow on big logs
            "default_page_size": 50,
            "facet_time_limit_ms": 800,
            "sql_time_limit_ms": 5000,
            "truncate_cells_html": 400,
        },
    )
    if database not in datasette.databases:
        raise RuntimeError(f"Datasette named the warehouse {list(datasette.databases)}")
    plugin.configure(
        datasette, path, database, review_token or new_review_token(), require_login=require_login
    )
    return datasette


def new_review_token() -> str:
    return secrets.token_urlsafe(18)


class SearchIndexRefresher(threading.Thread):
    """Keeps the derived search index up to date with events that land while serving."""

    def __init__(self, db_path: str, interval_s: float) -> None:
        super().__init__(name="medstore-search-index", daemon=True)
        self.db_path = db_path
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                added = refresh_search_index(self.db_path)
            except Exception:  # a busy or vanished file must not stop the server
                log.exception("refreshing the search index failed; will retry")
                continue
            if added:
                log.info("search index: %d new raw outputs", added)


def run_server(
    datasette: Datasette, *, host: str, port: int, refresh_interval_s: float = 5.0
) -> None:
    import uvicorn

    refresher = SearchIndexRefresher(datasette.medstore.db_path, refresh_interval_s)  # type: ignore[attr-defined]
    refresher.start()
    try:
        uvicorn.run(datasette.app(), host=host, port=port, log_level="warning", lifespan="on")
    finally:
        refresher.stopped.set()
