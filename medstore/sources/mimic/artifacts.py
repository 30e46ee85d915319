"""Per-patient artifacts of `mimic-dialogue`, projected from the event log alone.

Layout (the seed pipeline's): ``<SUBJECT_ID>/conversation_details.jsonl``,
``conversation_only.json``, ``patient_manifest.json`` and ``admissions/<HADM_ID>/`` with the
packet, input manifest, prompt, model call record, raw output, conversation, summary and (when
there are any) the unlinked radiology notes. The log is immutable, so regenerating gives the
same bytes; the patient's folder is replaced as a whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from medstore.warehouse.store import Warehouse

RECIPE = "mimic-dialogue"


class ArtifactsError(Exception):
    """Nothing to write (unknown subject, no accepted conversation): one line."""


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def accepted_admissions(warehouse: Warehouse, subject_id: int) -> list[dict[str, Any]]:
    """The latest accepted sample of each admission of the subject, in admission order."""
    rows = warehouse.select(
        "accepted_samples_like", recipe=RECIPE, task_key_pattern=f"{RECIPE}:{subject_id}-%"
    )
    latest: dict[int, dict[str, Any]] = {}
    for row in rows:
        sample = json.loads(row["sample_json"])
        latest[sample["hadm_id"]] = {**row, "sample": sample}
    return sorted(
        latest.values(), key=lambda r: (r["sample"]["admission_seq"], r["sample"]["hadm_id"])
    )


def task_events(warehouse: Warehouse, task_key: str, run_id: str) -> list[dict[str, Any]]:
    """The task's events in this run, in log order, each with its payload decoded."""
    events = warehouse.select("task_events", recipe=RECIPE, task_key=task_key, run_id=run_id)
    for event in events:
        event["payload"] = json.loads(event.pop("payload_json"))
    return events


def admission_files(warehouse: Warehouse, accepted: dict[str, Any]) -> dict[str, str]:
    """The files of one admission folder, by name."""
    events = task_events(warehouse, accepted["task_key"], accepted["run_id"])
    started = next(e for e in events if e["event_type"] == "task_started")
    record = json.loads(warehouse.blob(started["payload"]["source_record_blob"]) or "{}")
    packet = record["packet"]
    requests = [e for e in events if e["event_type"] == "llm_request"]
    calls, raw_outputs = model_calls(warehouse, events, requests)
    first = requests[0]["payload"]
    turns = accepted["sample"]["turns"]
    files = {
        "packet.json": dump(packet),
        "input_data_manifest.json": dump(input_manifest(record, accepted["sample"])),
        "prompt_record.json": dump(
            {
                "prompt_template": first["prompt_template"],
                "prompt_template_hash": first["prompt_template_hash"],
                "request_hash": first["request_hash"],
                "messages": warehouse.messages(first["messages"]),
            }
        ),
        "model_call_record.json": dump(model_call_record(warehouse, accepted, first, calls)),
        "raw_model_output.json": dump({"attempts": raw_outputs}),
        "conversation.jsonl": "".join(
            json.dumps({"turn": i, **turn}, sort_keys=True, ensure_ascii=False) + "\n"
            for i, turn in enumerate(turns)
        ),
        "summary.json": dump(admission_summary(accepted, len(requests))),
    }
    unlinked = packet["unlinked_radiology"]["rows"]
    if unlinked:
        files["unlinked_notes.json"] = dump(
            {
                "note": "radiology reports with no hadm_id, matched to this stay by subject and "
                "time only",
                "notes": unlinked,
            }
        )
    return files


def model_calls(
    warehouse: Warehouse, events: list[dict[str, Any]], requests: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each model call of the task (outcome, tokens, verdict) and its raw output, by attempt."""
    answers = {
        e["parent_event_id"]: e
        for e in events
        if e["event_type"] in ("llm_response", "cache_replay", "llm_error")
    }
    verdicts = {
        e["attempt"]: e["payload"] for e in events if e["event_type"] == "validation_verdict"
    }
    calls, raw_outputs = [], []
    for request in requests:
        answer = answers.get(request["event_id"])
        payload = answer["payload"] if answer else {}
        raw = warehouse.blob(payload.get("raw_output_blob"))
        calls.append(
            {
                "attempt": request["attempt"],
                "request_event_id": request["event_id"],
                "request_hash": request["payload"]["request_hash"],
                "prompt_template": request["payload"]["prompt_template"],
                "outcome": answer["event_type"] if answer else "no_answer",
                "latency_ms": payload.get("latency_ms"),
                "input_tokens": payload.get("input_tokens"),
                "output_tokens": payload.get("output_tokens"),
                "finish_reason": payload.get("finish_reason"),
                "validation": verdicts.get(request["attempt"]),
            }
        )
        raw_outputs.append({"attempt": request["attempt"], "raw_output": raw})
    return calls, raw_outputs


def input_manifest(record: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    """What went into the prompt: the packet's hash, caps, section sizes and source files."""
    packet = record["packet"]
    sections = {
        name: {key: value for key, value in content.items() if key != "rows"}
        | {"rows_in_packet": len(content["rows"])}
        for name, content in packet.items()
        if isinstance(content, dict) and "rows" in content
    }
    return {
        "subject_id": sample["subject_id"],
        "hadm_id": sample["hadm_id"],
        "packet_hash": record["packet_hash"],
        "row_caps": packet["row_caps"],
        "sections": sections,
        "has_discharge_note": packet["admission"]["has_discharge_note"],
        "source_files": record["source_files"],
    }


def model_call_record(
    warehouse: Warehouse,
    accepted: dict[str, Any],
    first: dict[str, Any],
    calls: list[dict[str, Any]],
) -> dict[str, Any]:
    """Which backend and model answered, with what parameters, under which data-use decision."""
    decision = warehouse.select("data_use_decisions", run_id=accepted["run_id"])
    return {
        "backend": first["backend"],
        "base_url": first["base_url"],
        "model": first["model"],
        "params": first["params"],
        "run_id": accepted["run_id"],
        "task_key": accepted["task_key"],
        "data_use_decision": json.loads(decision[0]["payload_json"]) if decision else None,
        "calls": calls,
    }


def admission_summary(accepted: dict[str, Any], llm_calls: int) -> dict[str, Any]:
    """The conversation in figures: turns, speakers, phases, days covered, calls and repairs."""
    sample = accepted["sample"]
    turns = sample["turns"]
    return {
        "subject_id": sample["subject_id"],
        "hadm_id": sample["hadm_id"],
        "admission_seq": sample["admission_seq"],
        "sample_id": accepted["sample_id"],
        "packet_hash": sample["packet_hash"],
        "hospital_days": sample["hospital_days"],
        "turns": len(turns),
        "speakers": dict(sorted(Counter(t["speaker"] for t in turns).items())),
        "phases": dict(sorted(Counter(t["phase"] for t in turns).items())),
        "days_covered": sorted({t["day"] for t in turns}),
        "llm_calls": llm_calls,
        "repairs": llm_calls - 1,
    }


def patient_files(warehouse: Warehouse, subject_id: int) -> dict[str, str]:
    """Every file of the patient's folder, by path relative to it."""
    admissions = accepted_admissions(warehouse, subject_id)
    if not admissions:
        raise ArtifactsError(
            f"subject_id {subject_id}: no accepted {RECIPE} conversation in {warehouse.path} "
            f"(run `python cli.py run --recipe {RECIPE} --subject-id {subject_id}` first)"
        )
    files: dict[str, str] = {}
    details, only, manifest = [], [], []
    for accepted in admissions:
        sample = accepted["sample"]
        folder = f"admissions/{sample['hadm_id']}"
        for name, text in admission_files(warehouse, accepted).items():
            files[f"{folder}/{name}"] = text
        for index, turn in enumerate(sample["turns"]):
            details.append(
                {"subject_id": subject_id, "hadm_id": sample["hadm_id"], "turn": index, **turn}
            )
        only.append(
            {
                "hadm_id": sample["hadm_id"],
                "turns": [{"speaker": t["speaker"], "text": t["text"]} for t in sample["turns"]],
            }
        )
        manifest.append(
            {
                "hadm_id": sample["hadm_id"],
                "admission_seq": sample["admission_seq"],
                "sample_id": accepted["sample_id"],
                "packet_hash": sample["packet_hash"],
                "turns": len(sample["turns"]),
                "folder": folder,
            }
        )
    files["conversation_details.jsonl"] = "".join(
        json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in details
    )
    files["conversation_only.json"] = dump(only)
    files["patient_manifest.json"] = dump(
        {"subject_id": subject_id, "recipe": RECIPE, "admissions": manifest}
    )
    return files


def write_patient_artifacts(warehouse: Warehouse, subject_id: int, out: str | Path) -> Path:
    """Write (or replace) ``out/<subject_id>``; everything is built before anything is written."""
    files = patient_files(warehouse, subject_id)
    target = Path(out) / str(subject_id)
    partial = Path(out) / f".{subject_id}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    for relative, text in sorted(files.items()):
        path = partial / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target
