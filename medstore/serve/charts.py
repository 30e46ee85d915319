"""The charts page's figures, read from the warehouse: events per run over time, task outcomes
by failure kind over time, failures by reason, tokens and cost per run and per stage, label
balance, judge scores and training loss. ``medstore.serve.svg`` draws them; ``draw_all`` returns
every chart's SVG markup (None for a chart with nothing to show yet).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import datetime

from medstore.serve.outcomes import outcomes_over_time
from medstore.serve.svg import (
    PALETTE,
    Bar,
    Series,
    bar_chart,
    count,
    hbar_chart,
    human,
    line_chart,
    money,
)
from medstore.warehouse import queries

RECENT_RUNS = 8
MAX_POINTS = 200
TOKENS = ["#2563eb", "#93c5fd"]  # input, output


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
        name = run_name(run["run_id"], run["recipe"], run["created_utc"])
        total = 0
        points = [(0.0, 0.0)]
        for bucket in buckets:
            total += bucket["events"]
            created = queries.select_value(conn, "serve_event_created", id=bucket["last_id"])
            seconds = (parse_utc(created) - started).total_seconds()
            points.append((max(seconds, 0.0), float(total)))
        series.append(Series(name, points))
    return series


def failures_by_reason(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    return [
        (row["label"], float(row["tasks"]))
        for row in queries.iterate(conn, "serve_failures_by_reason")
    ]


def label_balance(conn: sqlite3.Connection) -> list[Bar]:
    """Samples in the dataset per recipe and label, with each label's share of its recipe."""
    rows = queries.select(conn, "serve_label_balance")
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        totals[row["recipe"]] += row["samples"]
    colours: dict[str, str] = {}
    bars = []
    for row in rows:
        colour = colours.setdefault(row["recipe"], PALETTE[len(colours) % len(PALETTE)])
        share = 100 * row["samples"] / totals[row["recipe"]]
        bars.append(
            Bar(
                f"{row['recipe']}: {row['label']}",
                [("samples", float(row["samples"]))],
                f"{count(row['samples'], 'samples')} ({share:.0f}% of {row['recipe']})",
                [colour],
            )
        )
    return bars


def run_costs(conn: sqlite3.Connection) -> list[Bar]:
    """Input and output tokens of the recent runs, with calls and cost."""
    bars = []
    for run in queries.select(conn, "serve_run_costs", limit=RECENT_RUNS):
        bars.append(
            Bar(
                run_name(run["run_id"], run["recipe"], run["started_utc"]),
                [("input tokens", run["input_tokens"]), ("output tokens", run["output_tokens"])],
                f"{human(run['input_tokens'])} in + {human(run['output_tokens'])} out · "
                f"{count(run['llm_requests'], 'calls')} · {money(run['cost_usd'])}",
                TOKENS,
            )
        )
    return bars


def stage_costs(conn: sqlite3.Connection) -> list[Bar]:
    """Tokens and cost per recipe stage over the recent runs' answered calls."""
    bars = []
    for row in queries.select(conn, "serve_stage_costs", limit=RECENT_RUNS):
        bars.append(
            Bar(
                f"{row['recipe']}: {row['stage']}",
                [("input tokens", row["input_tokens"]), ("output tokens", row["output_tokens"])],
                f"{human(row['input_tokens'])} in + {human(row['output_tokens'])} out · "
                f"{count(row['calls'], 'calls')} · "
                + (money(row["cost_usd"]) if row["priced"] else "cost unknown"),
                TOKENS,
            )
        )
    return bars


def judge_scores(conn: sqlite3.Connection) -> list[Bar]:
    """How many samples got each judge score (rounded to one decimal), per recipe."""
    return [
        Bar(
            f"{row['recipe']}: score {row['score']:g}",
            [("samples", float(row["samples"]))],
            count(row["samples"], "samples"),
        )
        for row in queries.select(conn, "serve_judge_scores")
    ]


def run_name(run_id: str | None, recipe: str | None, started_utc: str | None) -> str:
    """A run as people tell runs apart: recipe, when it started, the start of its id."""
    when = started_utc[5:16].replace("T", " ") if started_utc else "?"
    return f"{recipe or 'no recipe'} · {when} · {(run_id or '?')[:8]}"


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


def draw_all(conn: sqlite3.Connection) -> dict[str, str | None]:
    """Every chart of the page as SVG markup (None: nothing to show yet)."""
    over_time = events_over_time(conn)
    outcomes = outcomes_over_time(conn)
    failures = failures_by_reason(conn)
    runs, stages = run_costs(conn), stage_costs(conn)
    labels, scores = label_balance(conn), judge_scores(conn)
    loss = training_loss(conn)
    tokens = ["input tokens", "output tokens"]
    return {
        "events_over_time": line_chart(
            over_time, x_label="seconds since the run started", y_label="events"
        )
        if over_time
        else None,
        "outcomes": outcomes,
        "failures": bar_chart(failures, unit="tasks") if failures else None,
        "runs": hbar_chart(runs, legend=tokens, legend_colours=TOKENS) if runs else None,
        "stages": hbar_chart(stages, legend=tokens, legend_colours=TOKENS) if stages else None,
        "labels": hbar_chart(labels) if labels else None,
        "judge": hbar_chart(scores) if scores else None,
        "loss": line_chart(loss, x_label="step", y_label="loss") if loss else None,
    }


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Keep at most MAX_POINTS evenly spread points (always the last one)."""
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    kept = [points[int(i * step)] for i in range(MAX_POINTS - 1)]
    return [*kept, points[-1]]
