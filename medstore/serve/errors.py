"""Error pages on a medstore warehouse: what went wrong in words, never where the file is, and
one log line per error with no frame locals (the review token must not reach the log)."""

from __future__ import annotations

import logging
from typing import Any

from datasette import Response
from datasette.utils.asgi import Base400
from datasette.views.base import DatasetteError

log = logging.getLogger(__name__)
SERVER_ERROR = "Something went wrong on the server; it is logged there."


def error_response(datasette: Any, request: Any, exception: BaseException) -> Any:
    config = datasette.medstore

    async def inner() -> Response:
        if isinstance(exception, Base400):
            status, message = exception.status, str(exception.args[0] if exception.args else "")
        elif isinstance(exception, DatasetteError):
            status, message = exception.status, exception.message
        else:
            status, message = 500, SERVER_ERROR
        message = message.replace(config.db_path, "the warehouse")
        if status >= 500:
            # The traceback, but no frame's locals (they hold requests, settings, tokens).
            log.error("%s %s failed: %s", request.method, request.path, type(exception).__name__,
                      exc_info=(type(exception), exception, exception.__traceback__))  # fmt: skip
        else:
            log.info("%s %s: %s", request.method, request.path, status)
        info = {"ok": False, "error": message, "status": status, "title": None}
        if request.path.split("?")[0].endswith(".json"):
            return Response.json(info, status=status)
        template = datasette.jinja_env.select_template([f"{status}.html", "error.html"])
        context = dict(info, urls=datasette.urls, app_css_hash=datasette.app_css_hash())
        page = await template.render_async(dict(context, menu_links=lambda: []))
        return Response.html(page, status=status)

    return inner
