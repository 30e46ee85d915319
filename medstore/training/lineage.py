"""Lineage from the other end: from a trained adapter's folder back to its training run, the
export it was trained on and the samples in it (by recipe and label), and with a sample id that
sample's provenance. Every link is checked by its hash: the training manifest against the one
the run recorded, the export manifest against the one the export recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medstore.training.artefacts import TRAINING_MANIFEST
from medstore.warehouse.hashing import content_hash
from medstore.warehouse.provenance import sample_provenance
from medstore.warehouse.store import Warehouse


class LineageError(Exception):
    """The chain cannot be followed (no training manifest, a run the warehouse lacks): one line."""


def read_training_manifest(adapter_dir: Path) -> tuple[dict[str, Any], str]:
    path = adapter_dir / TRAINING_MANIFEST
    if not adapter_dir.is_dir():
        raise LineageError(f"{adapter_dir}: no such folder")
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text), content_hash(text)
    except OSError:
        raise LineageError(
            f"{adapter_dir}: no {TRAINING_MANIFEST} (not a folder `python cli.py train` wrote)"
        ) from None
    except ValueError as exc:
        raise LineageError(f"{path}: not JSON ({exc})") from None


def training_record(warehouse: Warehouse, manifest: dict[str, Any], text_hash: str) -> dict:
    """The run's events: started, finished (with the manifest hash it recorded) and evals."""
    run_id = manifest.get("training_run_id")
    events = warehouse.select("lineage_training_events", training_run_id=run_id)
    if not events:
        raise LineageError(
            f"training run {run_id} is not in {warehouse.path}: pass --db of the warehouse it "
            "was trained with"
        )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        event["payload"] = json.loads(event.pop("payload_json"))
        by_type.setdefault(event["event_type"], []).append(event)
    finished = (by_type.get("training_finished") or [None])[-1]
    recorded = finished["payload"].get("training_manifest_hash") if finished else None
    return {
        "training_run_id": run_id,
        "started": (by_type.get("training_started") or [None])[0],
        "finished": finished,
        "manifest_hash": text_hash,
        "manifest_verified": recorded == text_hash,
        "evals": [
            {
                "task": e["payload"]["task"],
                "role": e["payload"]["role"],
                "examples": e["payload"]["examples"],
                "metrics": e["payload"]["metrics"],
                "event_id": e["event_id"],
            }
            for e in by_type.get("eval_result", [])
        ],
    }


def export_record(warehouse: Warehouse, data: dict[str, Any]) -> dict[str, Any] | None:
    """The export_written event of the export the run was trained on (the one whose manifest
    hash the run recorded, else the latest), and its samples by recipe and label."""
    export_id = data.get("export_id")
    if not export_id:
        return None
    events = warehouse.select("lineage_exports", export_id=export_id)
    if not events:
        return {"export_id": export_id, "found": False}
    for event in events:
        event["payload"] = json.loads(event.pop("payload_json"))
    matching = [e for e in events if e["payload"]["manifest_hash"] == data["export_manifest_hash"]]
    event = (matching or events)[-1]
    samples = warehouse.select("lineage_export_samples", export_event_id=event["event_id"])
    return {
        "export_id": export_id,
        "found": True,
        "event_id": event["event_id"],
        "created_utc": event["created_utc"],
        "recipe": event["payload"]["recipe"],
        "format": event["payload"]["format"],
        "kind": event["payload"].get("kind", "sft"),
        "out_dir": event["payload"]["out_dir"],
        "counts": event["payload"]["counts"],
        "manifest_hash": event["payload"]["manifest_hash"],
        "manifest_verified": bool(matching),
        "samples": samples,
    }


def adapter_lineage(
    warehouse: Warehouse, adapter_dir: Path, sample_id: str | None = None
) -> dict[str, Any]:
    """The chain adapter → training run → export → samples; with ``sample_id``, that sample's
    provenance (it must be one of the export's samples)."""
    manifest, text_hash = read_training_manifest(adapter_dir)
    lineage: dict[str, Any] = {
        "adapter": {
            "dir": str(adapter_dir.resolve()),
            "method": manifest.get("method"),
            "base_model": manifest.get("base_model"),
            "metrics": manifest.get("metrics", {}),
        },
        "training_run": training_record(warehouse, manifest, text_hash),
        "export": export_record(warehouse, manifest.get("data") or {}),
    }
    if sample_id is not None:
        export = lineage["export"]
        if not export or not export.get("found"):
            raise LineageError("--sample: the run's export is not in this warehouse")
        named = warehouse.select_value(
            "lineage_sample_in_export", export_event_id=export["event_id"], sample_id=sample_id
        )
        if not named:
            raise LineageError(f"sample {sample_id} is not in export {export['export_id']}")
        events = sample_provenance(warehouse, sample_id)
        lineage["sample"] = {"sample_id": sample_id, "events": events}
    return lineage


def mark(ok: bool) -> str:
    return "verified" if ok else "DOES NOT MATCH the recorded hash"


def render_lineage(lineage: dict[str, Any]) -> str:
    """The chain as indented lines (the sample's provenance is rendered by the caller)."""
    adapter, run, export = lineage["adapter"], lineage["training_run"], lineage["export"]
    base = adapter["base_model"] or {}
    lines = [f"adapter {adapter['dir']}: {adapter['method']} of {base.get('spec')} "
             f"(weights {base.get('weights_hash')})"]  # fmt: skip
    finished = run["finished"]["payload"] if run["finished"] else {}
    metrics = ", ".join(f"{k} {v:g}" for k, v in (finished.get("metrics") or {}).items())
    started = run["started"]
    when = f" at {run['finished']['created_utc']}" if run["finished"] else ""
    lines.append(
        f"  training run {run['training_run_id']}: {finished.get('status', 'not finished')}"
        f"{when}{', ' + metrics if metrics else ''}; training_manifest.json "
        f"{mark(run['manifest_verified'])}"
    )
    if started:
        lines.append(f"    started {started['created_utc']} (event {started['event_id']})")
    for ev in run["evals"]:
        scores = ", ".join(f"{k} {v:g}" for k, v in ev["metrics"].items())
        lines.append(f"    eval {ev['task']} ({ev['role']}, {ev['examples']} examples): {scores}")
    if export is None:
        lines.append("  export: none (trained on data that is no medstore export)")
        return "\n".join(lines)
    if not export["found"]:
        lines.append(f"  export {export['export_id']}: not in this warehouse")
        return "\n".join(lines)
    counts = export["counts"]
    per_split = ", ".join(f"{n} {name}" for name, n in counts.items() if name != "total")
    lines.append(
        f"  export {export['export_id']}: {export['recipe']} {export['kind']} as "
        f"{export['format']} in {export['out_dir']}, {counts.get('total')} rows ({per_split}), "
        f"written {export['created_utc']} (event {export['event_id']}); manifest "
        f"{mark(export['manifest_verified'])}"
    )
    total = sum(row["n"] for row in export["samples"])
    in_dataset = sum(row["in_dataset"] or 0 for row in export["samples"])
    lines.append(f"    samples: {total}, {in_dataset} still in the dataset")
    lines += [f"      {row['recipe']} {row['label']}: {row['n']}" for row in export["samples"]]
    return "\n".join(lines)
