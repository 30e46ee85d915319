"""The review queue: the reviewable samples under a filter (recipe, label, review state, gate,
judge score), as a paginated list with bulk verdicts, or one sample at a time with keyboard
shortcuts. Verdicts go through the same handler and event as the provenance page's form; the
reviewer is the login, never a form field."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from datasette.utils.asgi import Forbidden, NotFound, Response

from medstore.serve import readable
from medstore.serve.auth import safe_next
from medstore.serve.pages import readable_settings, sample_path, task_path
from medstore.serve.plugin import REVIEW_ACTION, settings, static_name
from medstore.warehouse.review import ReviewError, record_reviews
from medstore.warehouse.samples import (
    REVIEW_STATES,
    QueueFilter,
    queue_entries,
    queue_rows,
)
from medstore.warehouse.store import Warehouse

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
QUEUE = "/-/medstore/review"


class BadFilter(ValueError):
    """A filter the queue cannot apply, with a one-line reason."""


def parse_filter(args: Any) -> QueueFilter:
    """The queue filter from a request's query string (blank fields mean any)."""
    bounds = {}
    for name in ("judge_min", "judge_max"):
        text = (args.get(name) or "").strip()
        try:
            bounds[name] = float(text) if text else None
        except ValueError:
            raise BadFilter(f"{name} must be a number, not {text!r}") from None
    where = QueueFilter(
        recipe=args.get("recipe") or "",
        label=args.get("label") or "",
        state=args.get("state") or "",
        gate=args.get("gate") or "",
        **bounds,
    )
    if where.state and where.state not in REVIEW_STATES:
        raise BadFilter(f"state must be one of {', '.join(REVIEW_STATES)}, not {where.state!r}")
    return where


def whole_number(args: Any, name: str, default: int, most: int) -> int:
    text = (args.get(name) or "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise BadFilter(f"{name} must be a whole number from 1 to {most}, not {text!r}")
    return int(text)


def query_string(where: QueueFilter, **extra: Any) -> str:
    fields = {
        "recipe": where.recipe,
        "label": where.label,
        "state": where.state,
        "gate": where.gate,
        "judge_min": "" if where.judge_min is None else f"{where.judge_min:g}",
        "judge_max": "" if where.judge_max is None else f"{where.judge_max:g}",
        **extra,
    }
    if fields.get("size") == PAGE_SIZE:
        fields["size"] = ""
    return urlencode({key: value for key, value in fields.items() if value not in ("", None)})


@dataclass
class Queue:
    """The queue under a filter: every entry (all review states, for progress) and the ones in
    the filter's review state (what is listed and stepped through)."""

    entries: list[dict[str, Any]]
    listed: list[dict[str, Any]]

    @classmethod
    def load(cls, warehouse: Warehouse, where: QueueFilter) -> Queue:
        entries = queue_entries(warehouse, where)
        listed = [e for e in entries if not where.state or e["review_state"] == where.state]
        return cls(entries, listed)

    def progress(self) -> dict[str, int]:
        counts = {state: 0 for state in REVIEW_STATES}
        for entry in self.entries:
            counts[entry["review_state"]] += 1
        total = len(self.entries)
        return {"total": total, "reviewed": total - counts["unreviewed"], **counts}

    def step(self, accepted_id: int, forward: bool) -> dict[str, Any] | None:
        """The listed entry right after (or before) a queue position."""
        ids = [e["accepted_id"] for e in self.listed]
        if forward:
            index = bisect.bisect_right(ids, accepted_id)
            return self.listed[index] if index < len(ids) else None
        index = bisect.bisect_left(ids, accepted_id) - 1
        return self.listed[index] if index >= 0 else None

    def position(self, accepted_id: int) -> int:
        """1-based place among the listed entries (of those at or before it)."""
        return bisect.bisect_right([e["accepted_id"] for e in self.listed], accepted_id)


def warehouse_of(datasette) -> Any:
    config = settings(datasette)
    if config is None:
        raise NotFound("not a medstore warehouse")
    return config


async def render(datasette, request, template: str, context: dict[str, Any], status: int = 200):
    can_review = await datasette.permission_allowed(request.actor, REVIEW_ACTION, default=False)
    return Response.html(
        await datasette.render_template(
            template,
            {
                "can_review": can_review,
                "login_url": datasette.urls.path("/-/medstore/login")
                + "?"
                + urlencode({"next": request.full_path}),
                "queue": datasette.urls.path(QUEUE),
                "states": REVIEW_STATES,
                "readable": readable.render_value,
                **context,
            },
            request=request,
        ),
        status=status,
    )


async def queue_page(datasette, request) -> Response:
    """The list: filters, progress, one page of samples, and the bulk verdict form."""
    config = await readable_settings(datasette, request)
    try:
        where = parse_filter(request.args)
        page = whole_number(request.args, "page", 1, 10**9)
        size = whole_number(request.args, "size", PAGE_SIZE, MAX_PAGE_SIZE)
    except BadFilter as exc:
        return Response.text(str(exc), status=400)

    def load() -> dict[str, Any]:
        with Warehouse(config.db_path, readonly=True) as warehouse:
            queue = Queue.load(warehouse, where)
            shown = queue.listed[(page - 1) * size : page * size]
            rows = queue_rows(warehouse, [e["sample_id"] for e in shown])
            choices: dict[str, list[dict[str, Any]]] = {"recipe": [], "label": [], "gate": []}
            for row in warehouse.select("review_queue_choices"):
                choices[row["filter"]].append(row)
            return {"queue": queue, "rows": rows, "choices": choices}

    loaded = await asyncio.to_thread(load)
    queue = loaded["queue"]
    pages = max(1, -(-len(queue.listed) // size))
    for row in loaded["rows"]:
        row["sample_url"] = sample_path(datasette, row["sample_id"])
        row["task_url"] = task_path(datasette, row["recipe"], row["task_key"])
    base = datasette.urls.path(QUEUE)
    return await render(
        datasette,
        request,
        "medstore_queue.html",
        {
            "database": config.database,
            "where": where,
            "progress": queue.progress(),
            "listed": len(queue.listed),
            "rows": loaded["rows"],
            "choices": loaded["choices"],
            "page": page,
            "pages": pages,
            "page_url": lambda number: f"{base}?{query_string(where, page=number, size=size)}",
            "first_url": f"{base}/item?{query_string(where)}",
            "here": request.full_path,
            "bulk_url": f"{base}/bulk",
        },
    )


async def item_page(datasette, request) -> Response:
    """One sample of the queue: the sample first, then the verdict buttons (a, r) and the way
    on (n, p). ``sample_id`` shows that sample, ``after``/``before`` the neighbour of one."""
    config = await readable_settings(datasette, request)
    try:
        where = parse_filter(request.args)
    except BadFilter as exc:
        return Response.text(str(exc), status=400)
    args = {name: request.args.get(name) or "" for name in ("sample_id", "after", "before")}

    def load() -> dict[str, Any]:
        with Warehouse(config.db_path, readonly=True) as warehouse:
            queue = Queue.load(warehouse, where)
            entry = pick(warehouse, queue, args)
            rows = queue_rows(warehouse, [entry["sample_id"]]) if entry else []
            return {"queue": queue, "row": rows[0] if rows else None}

    try:
        loaded = await asyncio.to_thread(load)
    except LookupError as exc:
        raise NotFound(str(exc)) from exc
    queue, row = loaded["queue"], loaded["row"]
    base = datasette.urls.path(QUEUE)
    context: dict[str, Any] = {
        "database": config.database,
        "where": where,
        "progress": queue.progress(),
        "listed": len(queue.listed),
        "row": row,
        "list_url": f"{base}?{query_string(where)}",
    }
    if row is not None:
        sample_id = row["sample_id"]
        context |= {
            "position": queue.position(row["accepted_id"]),
            "review_url": sample_path(datasette, sample_id) + "/review",
            "sample_url": sample_path(datasette, sample_id),
            "task_url": task_path(datasette, row["recipe"], row["task_key"]),
            "next_url": f"{base}/item?{query_string(where, after=sample_id)}",
            "prev_url": f"{base}/item?{query_string(where, before=sample_id)}",
            "has_next": queue.step(row["accepted_id"], True) is not None,
            "has_prev": queue.step(row["accepted_id"], False) is not None,
            "script_url": datasette.urls.static_plugins(static_name(), "medstore-review.js"),
        }
    return await render(datasette, request, "medstore_queue_item.html", context)


def pick(warehouse: Warehouse, queue: Queue, args: dict[str, str]) -> dict[str, Any] | None:
    """The entry an item page shows (None: nothing left in that direction)."""
    if args["sample_id"]:
        return {"sample_id": args["sample_id"], "accepted_id": accepted_id(warehouse, args)}
    for name, forward in (("after", True), ("before", False)):
        if args[name]:
            return queue.step(accepted_id(warehouse, {"sample_id": args[name]}), forward)
    return queue.listed[0] if queue.listed else None


def accepted_id(warehouse: Warehouse, args: dict[str, str]) -> int:
    found = warehouse.select_value("review_queue_position", sample_id=args["sample_id"])
    if found is None:
        raise LookupError(f"no reviewable sample with id {args['sample_id']!r}")
    return found


async def bulk_review(datasette, request) -> Response:
    """POST one verdict for several samples: sample_id (repeated), verdict, note, next."""
    config = warehouse_of(datasette)
    if request.method != "POST":
        return Response.text("POST verdicts here", status=405)
    if not await datasette.permission_allowed(request.actor, REVIEW_ACTION, default=False):
        raise Forbidden("Recording verdicts needs a reviewer login (/-/medstore/login)")
    form = parse_qs((await request.post_body()).decode("utf-8"), keep_blank_values=True)
    sample_ids = form.get("sample_id", [])
    verdict = (form.get("verdict") or [""])[-1]
    note = (form.get("note") or [""])[-1]
    back = safe_next((form.get("next") or [datasette.urls.path(QUEUE)])[-1])
    reviewer = request.actor["id"]
    try:
        results = await asyncio.to_thread(
            record_reviews, config.db_path, sample_ids, verdict, note, reviewer
        )
    except ReviewError as exc:
        datasette.add_message(request, str(exc), datasette.ERROR)
        return Response.redirect(back)
    datasette.add_message(request, f"Recorded {verdict} for {len(results)} samples as {reviewer}.")
    return Response.redirect(back)


ROUTES = [
    (r"^/-/medstore/review$", queue_page),
    (r"^/-/medstore/review/item$", item_page),
    (r"^/-/medstore/review/bulk$", bulk_review),
]
