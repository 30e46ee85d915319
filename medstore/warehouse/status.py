"""What is in a warehouse: tasks by state per recipe, recent runs, skipped source records."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from medstore.tables import render_table
from medstore.warehouse.store import Warehouse


def warehouse_status(warehouse: Warehouse, recent_runs: int = 10) -> dict[str, Any]:
    recipes: dict[str, dict[str, Any]] = {}
    failures: dict[str, Counter] = {}
    # One pass over task_state (a second one cost 0.5 s at 100,000 tasks): states, and the
    # reasons of the rejected and failed tasks.
    for row in warehouse.select("status_task_states"):
        tasks = recipes.setdefault(row["recipe"], {"tasks": {}})["tasks"]
        tasks[row["state"]] = tasks.get(row["state"], 0) + row["n"]
        if row["state"] in ("rejected", "failed"):
            failures.setdefault(row["recipe"], Counter())[row["reason"]] += row["n"]
    for row in warehouse.select("status_samples_per_recipe"):
        recipes.setdefault(row["recipe"], {"tasks": {}})["samples"] = row["n"]
    for recipe, reasons in failures.items():
        recipes[recipe]["failures_by_reason"] = dict(reasons.most_common())
    for row in warehouse.select("status_skipped_in_latest_runs"):
        recipes.setdefault(row["recipe"], {"tasks": {}}).setdefault("source_skipped", {})[
            row["reason"]
        ] = row["n"]
    for row in warehouse.select("status_gate_rejections"):
        recipes.setdefault(row["recipe"], {"tasks": {}}).setdefault("rejected_by_gate", {})[
            row["gate"]
        ] = row["n"]
    runs = warehouse.select("status_recent_runs", limit=recent_runs)
    for run in runs:
        run["failures_by_reason"] = json.loads(run.pop("failures_by_reason_json") or "{}")
    totals = warehouse.select_one("status_sizes")
    return {"warehouse": warehouse.path, **totals, "recipes": recipes, "recent_runs": runs}


RUN_COLUMNS = (
    "run", "recipe", "status", "accepted", "rejected", "failed", "calls", "from_cache", "errors",
    "input_tokens", "output_tokens", "cost",
)  # fmt: skip


def render_status(status: dict[str, Any]) -> str:
    """The status as tables: tasks per recipe, why tasks failed, recent runs, and where next."""
    lines = [f"{status['warehouse']}: {status['events']:,} events, {status['blobs']:,} blobs"]
    if not status["recipes"]:
        lines.append("no tasks yet: try `python cli.py run --recipe consult --limit 3`")
        return "\n".join(lines)
    states = ("accepted", "rejected", "failed", "pending")
    recipes = [
        {"recipe": recipe, "samples": info.get("samples", 0)}
        | {state: info["tasks"].get(state, 0) for state in states}
        for recipe, info in status["recipes"].items()
    ]
    lines += ["", render_table(recipes, ("recipe", "samples", *states))]
    reasons = [
        {"recipe": recipe, "tasks": n, "reason": reason}
        for recipe, info in status["recipes"].items()
        for reason, n in info.get("failures_by_reason", {}).items()
    ] + [
        {"recipe": recipe, "tasks": n, "reason": f"source rows skipped: {reason}"}
        for recipe, info in status["recipes"].items()
        for reason, n in info.get("source_skipped", {}).items()
    ]
    if reasons:
        lines += ["", "why tasks were rejected or failed:"]
        lines.append(render_table(reasons, ("recipe", "tasks", "reason")))
    gates = [
        {"recipe": recipe, "tasks": n, "gate": gate}
        for recipe, info in status["recipes"].items()
        for gate, n in info.get("rejected_by_gate", {}).items()
    ]
    if gates:
        lines += ["", "content gates the rejected tasks failed (report --recipe R: which tasks):"]
        lines.append(render_table(gates, ("recipe", "tasks", "gate")))
    if status["recent_runs"]:
        runs = [
            run
            | {
                "run": run["run_id"][:8],
                "calls": run["llm_requests"],
                "from_cache": run["cache_replays"],
                "errors": run["llm_errors"],
                "cost": f"${run['cost_usd']:.4f}",
            }
            for run in status["recent_runs"]
        ]
        lines += ["", "recent runs:", render_table(runs, RUN_COLUMNS)]
    first = next(iter(status["recipes"]))
    lines += [
        "",
        f"sample ids: python cli.py samples --recipe {first}; one sample's story: "
        "python cli.py provenance SAMPLE_ID",
    ]
    return "\n".join(lines)
