"""The plugin's pages: a task's story, a sample's provenance, the reviewer verdict form handler,
reviewer login and charts (the review queue is ``medstore.serve.queue``). Reading needs no
login; writing a verdict needs the review token (a login cookie, or ``Authorization: Bearer``),
and browser forms carry Datasette's CSRF token."""

from __future__ import annotations

import asyncio
from typing import Any

from datasette.utils import tilde_decode, tilde_encode
from datasette.utils.asgi import Forbidden, NotFound, Response

from medstore.serve import charts as serve_charts
from medstore.serve import readable
from medstore.serve.auth import safe_next
from medstore.serve.plugin import REVIEW_ACTION, is_reviewer, settings
from medstore.serve.story import UnknownTask, sample_story, task_story
from medstore.warehouse.provenance import UnknownSample
from medstore.warehouse.review import ReviewError, record_review
from medstore.warehouse.store import Warehouse

REVIEWING_OFF = (
    "Reviewing is off on this server: start it with `python cli.py serve`, or set "
    "$MEDSTORE_REVIEW_TOKEN before `datasette` (and serve the file without --immutable)."
)


def sample_path(datasette, sample_id: str) -> str:
    return datasette.urls.path(f"/-/medstore/sample/{tilde_encode(sample_id)}")


def task_path(datasette, recipe: str, task_key: str) -> str:
    return datasette.urls.path(f"/-/medstore/task/{tilde_encode(recipe)}/{tilde_encode(task_key)}")


RENDERERS = {
    "readable": readable.render_value,
    "output": readable.render_output,
    "pretty": readable.pretty_json,
}


async def task_page(datasette, request) -> Response:
    """Every task, whatever its state: its story in order, its final state and why."""
    config = await readable_settings(datasette, request)
    recipe = tilde_decode(request.url_vars["recipe"])
    task_key = tilde_decode(request.url_vars["task_key"])

    def load() -> dict[str, Any]:
        with Warehouse(config.db_path, readonly=True) as warehouse:
            return task_story(warehouse, recipe, task_key)

    try:
        story = await asyncio.to_thread(load)
    except UnknownTask as exc:
        raise NotFound(str(exc)) from exc
    if request.url_vars.get("format") == "json":
        return Response.json(story, default=str)
    return Response.html(
        await datasette.render_template(
            "medstore_task.html",
            {
                "story": story,
                "database": config.database,
                "json_url": task_path(datasette, recipe, task_key) + ".json",
                **RENDERERS,
            },
            request=request,
        )
    )


async def sample_page(datasette, request) -> Response:
    config = await readable_settings(datasette, request)
    sample_id = tilde_decode(request.url_vars["sample_id"])

    def load() -> dict[str, Any]:
        with Warehouse(config.db_path, readonly=True) as warehouse:
            return sample_story(warehouse, sample_id)

    try:
        story = await asyncio.to_thread(load)
    except UnknownSample as exc:
        raise NotFound(str(exc)) from exc
    if request.url_vars.get("format") == "json":
        return Response.json(story, default=str)
    can_review = await datasette.permission_allowed(request.actor, REVIEW_ACTION, default=False)
    return Response.html(
        await datasette.render_template(
            "medstore_sample.html",
            {
                "story": story,
                "database": config.database,
                "can_review": can_review,
                "review_url": sample_path(datasette, sample_id) + "/review",
                "login_url": datasette.urls.path("/-/medstore/login")
                + "?next="
                + sample_path(datasette, sample_id),
                "task_url": task_path(datasette, story["recipe"], story["task_key"]),
                "queue_url": datasette.urls.path("/-/medstore/review"),
                **RENDERERS,
            },
            request=request,
        )
    )


async def review_sample(datasette, request) -> Response:
    """POST a verdict: form fields verdict (accept|reject), note, next (where a browser goes
    after it: the review queue's next sample), and reviewer for API clients only (a browser's
    reviewer is its login)."""
    config = settings(datasette)
    if config is None:
        raise NotFound("not a medstore warehouse")
    if request.method != "POST":
        return Response.text("POST a verdict here", status=405)
    if not await datasette.permission_allowed(request.actor, REVIEW_ACTION, default=False):
        raise Forbidden(
            "Recording a verdict needs a reviewer login (/-/medstore/login) or an "
            "Authorization: Bearer header with the review token"
        )
    sample_id = tilde_decode(request.url_vars["sample_id"])
    form = await request.post_vars()
    reviewer = request.actor["id"]
    if reviewer == "api":
        reviewer = form.get("reviewer") or "api"
    wants_json = request.headers.get("accept") == "application/json" or (
        request.headers.get("authorization", "").startswith("Bearer ")
    )
    try:
        result = await asyncio.to_thread(
            record_review,
            config.db_path,
            sample_id,
            form.get("verdict", ""),
            form.get("note", ""),
            reviewer,
        )
    except ReviewError as exc:
        if wants_json:
            return Response.json({"ok": False, "error": str(exc)}, status=400)
        datasette.add_message(request, str(exc), datasette.ERROR)
        return Response.redirect(sample_path(datasette, sample_id))
    if wants_json:
        return Response.json({"ok": True, **result})
    datasette.add_message(
        request,
        f"Recorded your verdict on {sample_id}: {result['verdict']}"
        + (" (the sample has left the dataset)" if result["verdict"] == "reject" else ""),
    )
    return Response.redirect(safe_next(form.get("next") or sample_path(datasette, sample_id)))


async def login(datasette, request) -> Response:
    """Reviewer login: the review token printed (or set) at `serve` time, plus a name. Failed
    attempts are throttled per client address."""
    config = settings(datasette)
    if config is None:
        raise NotFound("not a medstore warehouse")
    next_path = request.args.get("next") or "/"
    error, status = None, 200
    if request.method == "POST":
        form = await request.post_vars()
        next_path = form.get("next") or "/"
        name = (form.get("reviewer") or "").strip()
        client = (request.scope.get("client") or ("?",))[0]
        wait = config.throttle.wait_seconds(client)
        if config.review_token is None:
            error, status = REVIEWING_OFF, 403
        elif wait:
            error, status = f"Too many failed logins: try again in {wait:.0f} s.", 429
        elif not name:
            error, status = "Give your name: it is recorded with every verdict.", 403
        elif not config.review_token.matches((form.pop("token", "") or "").strip()):
            config.throttle.failed(client)
            error, status = "That is not the review token this server was started with.", 403
        else:
            response = Response.redirect(safe_next(next_path))
            response.set_cookie(
                "ds_actor",
                datasette.sign({"a": {"id": name, "medstore_reviewer": True}}, "actor"),
                httponly=True,
                samesite="lax",
            )
            return response
    return Response.html(
        await datasette.render_template(
            "medstore_login.html",
            {
                "error": error,
                "next": safe_next(next_path),
                "reviewer": is_reviewer(request.actor),
                "reviewing_off": REVIEWING_OFF if config.review_token is None else None,
            },
            request=request,
        ),
        status=status,
    )


async def readable_settings(datasette: Any, request: Any) -> Any:
    """The warehouse's settings if this request may read its pages: a wrong Authorization
    header never may, and with --require-login only a logged-in reviewer may."""
    config = settings(datasette)
    if config is None:
        raise NotFound("not a medstore warehouse")
    actor = request.actor or {}
    if actor.get("medstore_invalid_credentials"):
        raise Forbidden("the Authorization header does not hold this server's review token")
    if config.require_login and not is_reviewer(actor):
        raise Forbidden("this warehouse holds credentialed data: log in at /-/medstore/login")
    return config


async def charts(datasette, request) -> Response:
    config = await readable_settings(datasette, request)
    db = datasette.get_database(config.database)

    figures = await db.execute_fn(serve_charts.draw_all)
    return Response.html(
        await datasette.render_template(
            "medstore_charts.html",
            {"charts": figures, "database": config.database},
            request=request,
        )
    )


ROUTES = [
    (r"^/-/medstore/task/(?P<recipe>[^/]+)/(?P<task_key>[^/]+?)(\.(?P<format>json))?$", task_page),
    (r"^/-/medstore/sample/(?P<sample_id>[^/]+?)/review$", review_sample),
    (r"^/-/medstore/sample/(?P<sample_id>[^/]+?)(\.(?P<format>json))?$", sample_page),
    (r"^/-/medstore/login$", login),
    (r"^/-/medstore/charts$", charts),
]
