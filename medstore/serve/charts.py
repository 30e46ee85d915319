"""Charts for the Datasette frontend, drawn as inline SVG on the server: no JavaScript, no CDN.

Each figure function (``events_over_time``, ``failures_by_reason`` ...) reads one figure from
the warehouse; ``bar_chart`` and ``line_chart`` turn figures into SVG markup that the charts page
embeds as is.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from html import escape

from medstore.warehouse import queries

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
RECENT_RUNS = 8
MAX_POINTS = 200


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    dashed: bool = False


# Figures ----------------------------------------------------------------------------------------
def events_over_time(conn: sqlite3.Connection) -> list[Series]:
    """Cumulative events of the most recent runs against seconds since each run started.

    Each run's events are cut into about MAX_POINTS buckets of consecutive log ids, counted from
    the events_run index alone; only each bucket's last event is read for its time. A million
    events cost a few hundred milliseconds, not a pass over every row's timestamp.
    """
    runs = queries.select(conn, "serve_recent_runs", limit=RECENT_RUNS)
    series = []
    for run in reversed(runs):
        span = queries.select_one(conn, "serve_run_id_range", run_id=run["run_id"])
        width = max(1, (span["last_id"] - span["first_id"] + 1) // MAX_POINTS)
        buckets = queries.select(
            conn,
            "serve_run_event_buckets",
            run_id=run["run_id"],
            first_id=span["first_id"],
            width=width,
        )
        started = parse_utc(run["created_utc"])
        total = 0
        points = [(0.0, 0.0)]
        for bucket in buckets:
            total += bucket["events"]
            created = queries.select_value(conn, "serve_event_created", id=bucket["last_id"])
            seconds = (parse_utc(created) - started).total_seconds()
            points.append((max(seconds, 0.0), float(total)))
        series.append(Series(run["run_id"], points))
    return series


def failures_by_reason(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    return [
        (row["label"], float(row["tasks"]))
        for row in queries.iterate(conn, "serve_failures_by_reason")
    ]


def label_balance(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    return [
        (row["label"], float(row["samples"]))
        for row in queries.iterate(conn, "serve_label_balance")
    ]


def training_loss(conn: sqlite3.Connection) -> list[Series]:
    """Loss (and eval loss where logged) per training run, from ``training_logged`` events."""
    curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    eval_curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in queries.iterate(conn, "serve_training_logged"):
        payload = json.loads(row["payload_json"])
        step = payload.get("step")
        if step is None:
            continue
        name = payload.get("training_run_id") or row["run_id"] or "training"
        if payload.get("loss") is not None:
            curves[name].append((float(step), float(payload["loss"])))
        if payload.get("eval_loss") is not None:
            eval_curves[name].append((float(step), float(payload["eval_loss"])))
    series = [Series(f"{name} loss", thin(points)) for name, points in curves.items()]
    series += [
        Series(f"{name} eval loss", thin(points), dashed=True)
        for name, points in eval_curves.items()
    ]
    return series


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Keep at most MAX_POINTS evenly spread points (always the last one)."""
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    kept = [points[int(i * step)] for i in range(MAX_POINTS - 1)]
    return [*kept, points[-1]]


# Drawing ----------------------------------------------------------------------------------------
def bar_chart(items: list[tuple[str, float]], *, unit: str, width: int = 720) -> str:
    """Horizontal bars, one per label, longest first as given."""
    row_height, label_width, value_width = 22, 260, 70
    bar_space = width - label_width - value_width
    top = max((value for _, value in items), default=0) or 1
    height = row_height * len(items) + 8
    parts = [svg_open(width, height, f"bar chart of {unit} by category")]
    for index, (label, value) in enumerate(items):
        y = 4 + index * row_height
        length = max(1.0, bar_space * value / top)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{escape(shorten(label))}'
            f"<title>{escape(label)}</title></text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row_height - 6}"'
            f' fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(label)}: {value:g} {unit}'
            f"</title></rect>"
            f'<text x="{label_width + length + 4:.1f}" y="{y + 15}">{value:g}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: list[Series], *, x_label: str, y_label: str, width: int = 720, height: int = 300
) -> str:
    """Lines over a shared linear x and y axis, with ticks and a legend below."""
    left, right, top, bottom = 64, 16, 12, 44
    xs = [x for one in series for x, _ in one.points]
    ys = [y for one in series for _, y in one.points]
    x_min, x_max = min(xs, default=0), max(xs, default=1)
    y_min, y_max = min(min(ys, default=0), 0), max(ys, default=1)
    x_span, y_span = (x_max - x_min) or 1, (y_max - y_min) or 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def at(x: float, y: float) -> str:
        x_pos = left + plot_w * (x - x_min) / x_span
        y_pos = top + plot_h * (1 - (y - y_min) / y_span)
        return f"{x_pos:.1f},{y_pos:.1f}"

    legend_height = 18 * len(series)
    parts = [svg_open(width, height + legend_height, f"line chart of {y_label} by {x_label}")]
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"'
        ' stroke="#888"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>'
    )
    for i in range(5):
        fraction = i / 4
        x_value = x_min + x_span * fraction
        y_value = y_min + y_span * fraction
        x_pos = left + plot_w * fraction
        y_pos = top + plot_h * (1 - fraction)
        parts.append(
            f'<text x="{x_pos:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{x_value:.4g}</text>"
            f'<text x="{left - 6}" y="{y_pos + 4:.1f}" text-anchor="end">{y_value:.4g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{top + plot_h + 34}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})"'
        f' text-anchor="middle">{escape(y_label)}</text>'
    )
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if one.dashed else ""
        points = " ".join(at(x, y) for x, y in one.points)
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" stroke="{colour}"'
            f' stroke-width="2"{dash}><title>{escape(one.name)}</title></polyline>'
        )
        legend_y = height + 18 * index + 4
        parts.append(
            f'<line x1="{left}" y1="{legend_y}" x2="{left + 24}" y2="{legend_y}"'
            f' stroke="{colour}" stroke-width="3"{dash}/>'
            f'<text x="{left + 30}" y="{legend_y + 4}">{escape(one.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="medstore-chart-svg" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}"'
        ' font-family="sans-serif" font-size="12">'
    )


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
