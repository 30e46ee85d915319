"""medstore's Datasette plugin: metadata and canned queries, cell rendering, reviewer auth, and
the provenance, review, login and charts pages (in ``medstore.serve.pages``).

Installed as a ``datasette`` entry point, so plain ``datasette warehouse.db`` shows medstore's
pages too: at startup the plugin looks for a medstore warehouse among the databases. Reviewing
then needs ``$MEDSTORE_REVIEW_TOKEN``; ``cli.py serve`` sets a token itself. Every hook does
nothing on a Datasette instance that serves no warehouse.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from datasette import hookimpl
from datasette.utils import tilde_encode
from markupsafe import Markup, escape

from medstore.serve.auth import LoginThrottle, SecretToken, bearer

PLUGIN_NAME = "medstore"
REVIEW_ACTION = "medstore-review"
TOKEN_ENV = "MEDSTORE_REVIEW_TOKEN"
LONG_TEXT = 300
EVENT_ID_COLUMNS = {
    "event_id",
    "parent_event_id",
    "request_event_id",
    "response_event_id",
    "accepted_event_id",
    "replayed_event_id",
    "export_event_id",
}
NOTE_COLUMNS = {"review_note", "note", "message"}

log = logging.getLogger(__name__)


def register() -> None:
    """Load this plugin into Datasette's plugin manager unless its entry point already did."""
    # Imported here, not at the top: importing datasette.plugins loads the entry points, which
    # import this module; at the top, pluggy would register it half-initialised (the hooks
    # defined below this line missing) whenever this module is imported before Datasette.
    from datasette.plugins import pm

    module = sys.modules[__name__]
    if not pm.is_registered(module):
        pm.register(module, name=PLUGIN_NAME)


@dataclass
class ServeSettings:
    """What the plugin knows per Datasette instance; kept off the public metadata."""

    db_path: str
    database: str
    review_token: SecretToken | None  # None: nobody can record verdicts
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    require_login: bool = False  # every page needs a reviewer (credentialed data served widely)
    throttle: LoginThrottle = field(default_factory=LoginThrottle, repr=False)


def configure(
    datasette: Any,
    db_path: str,
    database: str,
    review_token: str | None,
    *,
    require_login: bool = False,
) -> None:
    """Serve ``database`` (the file ``db_path``) as a medstore warehouse."""
    from medstore.serve.kept_counts import KEPT_TABLES, use_kept_counts
    from medstore.serve.metadata import build_metadata
    from medstore.warehouse.store import Warehouse

    with Warehouse(db_path, readonly=True, require_current=False) as warehouse:
        metadata = build_metadata(warehouse, database)
    if set(metadata["databases"][database]["tables"]) >= KEPT_TABLES:  # older files lack them
        use_kept_counts(datasette, database)
    token = SecretToken(review_token) if review_token else None
    datasette.medstore = ServeSettings(db_path, database, token, metadata, require_login)


def settings(datasette: Any) -> ServeSettings | None:
    return getattr(datasette, "medstore", None)


def is_warehouse(path: str) -> bool:
    """A SQLite file holding medstore's event log (checked read-only, nothing written)."""
    import sqlite3

    from medstore.warehouse.store import WarehouseError, check_is_warehouse, connect

    try:
        conn = connect(path, readonly=True)
        try:
            check_is_warehouse(conn, path, migrations_may_be_pending=True)
        finally:
            conn.close()
    except (sqlite3.Error, WarehouseError):
        return False
    return True


def pending_migrations(path: str) -> list[str]:
    """The migrations this medstore would apply to the warehouse (read-only: none are)."""
    from medstore.warehouse.migrations import pending_migrations as pending
    from medstore.warehouse.store import connect

    conn = connect(path, readonly=True)
    try:
        return pending(conn)
    finally:
        conn.close()


# Set-up -----------------------------------------------------------------------------------------
@hookimpl
def startup(datasette):
    """Under plain ``datasette warehouse.db``, find the warehouse and serve it as medstore's.

    Nothing is migrated or written: Datasette opens the file read-only. A file served
    ``--immutable`` gets no reviewing, since SQLite's immutable readers must not see it change.
    """
    if settings(datasette) is not None:
        return
    for name, database in datasette.databases.items():
        if database.path and is_warehouse(database.path):
            pending = pending_migrations(database.path)
            if pending:
                log.warning(
                    "%s predates this medstore (%s not applied); its pages may fail until"
                    " `python cli.py migrate --db %s`",
                    database.path,
                    ", ".join(pending),
                    database.path,
                )
            token = os.environ.get(TOKEN_ENV) or None
            if token and not database.is_mutable:
                log.warning("%s is served immutable: reviewing is off", database.path)
                token = None
            configure(datasette, database.path, name, token)
            return


@hookimpl
def get_metadata(datasette, key, database, table):
    config = settings(datasette)
    return config.metadata if config is not None else None


def ours(datasette: Any, database: str | None) -> bool:
    config = settings(datasette)
    return config is not None and database == config.database


def is_reviewer(actor: dict[str, Any] | None) -> bool:
    return bool(actor and actor.get("medstore_reviewer"))


# Cells ------------------------------------------------------------------------------------------
@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, database: str, datasette):
    """Sample ids link to their provenance page (with the sample's summary on `samples`), task
    keys to the task's page, hashes to their blob, JSON is pretty-printed, notes wrap and long
    texts fold open on click."""
    if not ours(datasette, database) or value is None:
        return None
    if column == "sample_id" and isinstance(value, str):
        return sample_cell(datasette, row, value, table)
    if column.endswith("_blob") and isinstance(value, str) and value.startswith("b2:"):
        href = datasette.urls.row(database, "blobs", tilde_encode(value))
        return Markup(f'<a href="{escape(href)}">{escape(value[:15])}…</a>')
    if column in EVENT_ID_COLUMNS and isinstance(value, str) and table != "events":
        href = datasette.urls.table(database, "events") + f"?event_id={tilde_encode(value)}"
        return Markup(f'<a href="{escape(href)}">{escape(value)}</a>')
    columns = list(row.keys())  # a sqlite3.Row: `in row` would look at its values
    if column == "task_key" and isinstance(value, str) and "recipe" in columns:
        return task_cell(datasette, row["recipe"], value)
    if column == "content_hash" and isinstance(value, str):
        return Markup('<span title="{}">{}…</span>').format(value, value[:12])
    if isinstance(value, str) and (column.endswith("_json") or column == "content"):
        rendered = render_json_text(value)
        if rendered is not None:
            return rendered
    if column in NOTE_COLUMNS and isinstance(value, str):
        return Markup('<div class="medstore-note">{}</div>').format(value)
    if isinstance(value, str) and len(value) > LONG_TEXT:
        return folded(value[:160], Markup('<pre class="medstore-text">{}</pre>').format(value))
    return None


def sample_cell(datasette: Any, row: Any, sample_id: str, table: str | None) -> Markup:
    href = datasette.urls.path(f"/-/medstore/sample/{tilde_encode(sample_id)}")
    link = Markup('<a class="medstore-sample" href="{}">{}</a>').format(href, sample_id)
    columns = list(row.keys())  # a sqlite3.Row: `in row` would look at its values
    if table != "samples" or "sample_json" not in columns or row["sample_json"] is None:
        return link
    from medstore.warehouse.samples import summarize

    try:
        summary = summarize(json.loads(row["sample_json"]))
    except json.JSONDecodeError:
        return link
    return Markup('<div class="medstore-summary">{}</div>{}').format(summary, link)


def task_cell(datasette: Any, recipe: str | None, task_key: str) -> Markup:
    if recipe is None:
        return Markup("{}").format(task_key)
    href = datasette.urls.path(f"/-/medstore/task/{tilde_encode(recipe)}/{tilde_encode(task_key)}")
    return Markup('<a class="medstore-task" href="{}" title="its whole story">{}</a>').format(
        href, task_key
    )


def render_json_text(text: str) -> Markup | None:
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return None
    pretty = json.dumps(decoded, indent=2, ensure_ascii=False)
    block = Markup('<pre class="medstore-json">{}</pre>').format(pretty)
    if len(pretty) <= LONG_TEXT:
        return block
    return folded(text[:120], block)


def folded(summary: str, body: Markup) -> Markup:
    return Markup('<details class="medstore-fold"><summary>{}…</summary>{}</details>').format(
        summary, body
    )


# Auth -------------------------------------------------------------------------------------------
@hookimpl
def actor_from_request(datasette, request):
    """API clients authenticate with ``Authorization: Bearer <review token>``; a wrong or
    malformed one is marked, so that every medstore page refuses the request."""
    config = settings(datasette)
    token = bearer(request.headers)
    if config is None or token is None:
        return None
    if config.review_token is not None and config.review_token.matches(token):
        return {"id": "api", "medstore_reviewer": True}
    return {"id": "invalid-bearer", "medstore_invalid_credentials": True}


@hookimpl
def permission_allowed(datasette, actor, action):
    config = settings(datasette)
    if config is None:
        return None
    if actor and actor.get("medstore_invalid_credentials"):
        return False  # a wrong Authorization header gets nothing, not an anonymous view
    if action == REVIEW_ACTION:
        return is_reviewer(actor)
    if config.require_login and action in ("view-instance", "view-database", "view-table"):
        return is_reviewer(actor)
    return None


@hookimpl
def handle_exception(datasette, request, exception):
    """On a medstore warehouse: a plain error page (no path, no locals printed anywhere) and one
    log line; Datasette's own handler prints every frame's locals to the console."""
    if settings(datasette) is None:
        return None
    from medstore.serve.errors import error_response

    return error_response(datasette, request, exception)


# Pages ------------------------------------------------------------------------------------------
@hookimpl
def register_routes(datasette):
    from medstore.serve import pages, queue

    return pages.ROUTES + queue.ROUTES


@hookimpl
def extra_css_urls(datasette):
    if settings(datasette) is None:
        return []
    return [datasette.urls.static_plugins(static_name(), "medstore.css")]


def static_name() -> str:
    """Datasette mounts a plugin's static/ folder under its package's name when the plugin
    came from an entry point, else under its module name."""
    from datasette.plugins import pm

    module = sys.modules[__name__]
    for plugin, dist in pm.list_plugin_distinfo():
        if plugin is module:
            return dist.project_name
    return __name__


@hookimpl
def menu_links(datasette, actor):
    if settings(datasette) is None:
        return []
    config = settings(datasette)
    links = [
        {"href": datasette.urls.path("/-/medstore/review"), "label": "Review queue"},
        {
            "href": datasette.urls.table(config.database, "task_outcomes"),
            "label": "Tasks and why they ended",
        },
        {"href": datasette.urls.path("/-/medstore/charts"), "label": "Charts"},
        {
            "href": datasette.urls.database(config.database) + "/samples_awaiting_review",
            "label": "Samples awaiting review",
        },
    ]
    if not is_reviewer(actor):
        links.append({"href": datasette.urls.path("/-/medstore/login"), "label": "Reviewer login"})
    return links


@hookimpl
def prepare_connection(conn, database, datasette):
    if ours(datasette, database):
        # Readers never block the WAL writer, but a checkpoint can briefly hold them.
        conn.execute("PRAGMA busy_timeout = 5000")
