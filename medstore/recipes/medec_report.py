"""`cli.py report` figures for the MEDEC recipes, computed from the views and the source CSV."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from typing import Any

from medstore.recipes.base import SourceError, generic_report
from medstore.sources.medec import MedecPair, read_medec

ERROR_KINDS = (
    ("missing value", "missing value"),
    ("missing medication", "missing medication"),
    ("missing diagnosis", "missing diagnosis"),
    ("value not in the original", "invented value"),
    ("entity preservation", "score below threshold"),
    ("the paraphrase is too close", "too close to the original"),
    ("start directly with the note", "preamble"),
)


def medec_safe_report(warehouse: Any, recipe: str) -> dict[str, Any]:
    figures = generic_report(warehouse, recipe)
    rows = warehouse.select("report_medec_safe_sources")
    for row in rows:
        row["record"] = json.loads(row.pop("source_record_json") or "{}")
    figures["labels"] = label_balance(warehouse, figures["labels"])
    figures["source_verification"] = {
        "INCORRECT": verify_incorrect([r for r in rows if r["label"] == "INCORRECT"]),
        "CORRECT": verify_correct([r for r in rows if r["label"] == "CORRECT"]),
    }
    note_ids = Counter(row["note_id"] for row in rows)
    notes = Counter(row["note"] for row in rows)
    figures["duplicate_note_ids"] = sorted(n for n, count in note_ids.items() if count > 1)
    figures["duplicate_notes"] = sum(count - 1 for count in notes.values() if count > 1)
    samples = report_samples(warehouse, recipe)
    figures["entity_preservation"] = preservation_figures(samples)
    incorrect = [s for s in samples if s["label"] == "INCORRECT"]
    figures["reasoning"] = {
        "INCORRECT with reasoning": sum(s["reasoning"] is not None for s in incorrect),
        "INCORRECT without reasoning": sum(s["reasoning"] is None for s in incorrect),
    }
    figures["rejected_paraphrase_problems"] = rejection_problems(warehouse, recipe)
    figures["source_skipped"] = source_skipped(warehouse, recipe)
    return figures


def label_balance(warehouse: Any, accepted: dict[str, int]) -> dict[str, Any]:
    balanced = {
        row["label"]: row["n"] for row in warehouse.select("report_medec_safe_balanced_labels")
    }
    total = sum(balanced.values())
    return {
        "accepted": accepted,
        "balanced_dataset": balanced,
        "balanced_share_correct": round(balanced.get("CORRECT", 0) / total, 4) if total else None,
        "left_out_by_balancing": {
            label: accepted.get(label, 0) - balanced.get(label, 0)
            for label in ("CORRECT", "INCORRECT")
        },
    }


def verify_incorrect(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each INCORRECT note against the CSV it came from, its task record, and the model calls."""
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_file[row["record"].get("source_file", "")].append(row)
    identical, differing, unavailable = 0, [], 0
    for path, file_rows in by_file.items():
        try:
            texts = {
                item.note_id: item.incorrect_note
                for item in read_medec(path)
                if isinstance(item, MedecPair)
            }
        except SourceError:
            unavailable += len(file_rows)
            continue
        for row in file_rows:
            csv_text = texts.get(row["original_note_id"])
            if csv_text is not None and csv_text.encode() == row["note"].encode():
                identical += 1
            else:
                differing.append(row["note_id"])
    return {
        "samples": len(rows),
        "identical_to_csv": identical,
        "differing_from_csv": differing,
        "csv_unavailable": unavailable,
        "identical_to_task_source_record": sum(
            row["note"] == row["record"].get("note") for row in rows
        ),
        "llm_requests_outside_reasoning": sum(row["note_llm_requests"] for row in rows),
        "notes_equal_to_an_llm_output": sum(row["note_is_llm_output"] for row in rows),
        "reasoning_llm_requests": sum(row["reasoning_llm_requests"] for row in rows),
    }


def verify_correct(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "samples": len(rows),
        "from_a_paraphrase_output": sum(row["note_is_llm_output"] for row in rows),
        "not_from_a_paraphrase": [r["note_id"] for r in rows if not r["note_is_llm_output"]],
        "identical_to_original": sum(row["note"] == row["record"].get("note") for row in rows),
        "by_source": dict(Counter(row["source"] for row in rows)),
    }


def distribution(numbers: list[float]) -> dict[str, float] | None:
    if not numbers:
        return None
    ordered = sorted(numbers)
    return {
        "mean": round(statistics.fmean(ordered), 4),
        "min": round(ordered[0], 4),
        "p10": round(ordered[int(0.1 * (len(ordered) - 1))], 4),
        "median": round(statistics.median(ordered), 4),
        "max": round(ordered[-1], 4),
    }


def preservation_figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    checks = [s["metadata"]["entity_preservation"] for s in samples if s["label"] == "CORRECT"]
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "preserved": 0})
    for check in checks:
        for kind, counts in check["by_kind"].items():
            kinds[kind]["total"] += counts["total"]
            kinds[kind]["preserved"] += counts["preserved"]
    return {
        "paraphrases": len(checks),
        "score": distribution([c["score"] for c in checks]),
        "edit_ratio": distribution([c["edit_ratio"] for c in checks]),
        "entities_by_kind": dict(kinds),
        "paraphrases_with_a_lost_diagnosis": sum(bool(c["missing"]) for c in checks),
    }


def report_samples(warehouse: Any, recipe: str) -> list[dict[str, Any]]:
    """The recipe's samples in the dataset, decoded, by task."""
    return [
        json.loads(row["sample_json"]) for row in warehouse.select("report_samples", recipe=recipe)
    ]


def latest_rejections(warehouse: Any, recipe: str) -> list[dict[str, Any]]:
    """The latest rejection of every task that ends rejected, with its task key, by task."""
    rows = warehouse.select("report_latest_rejections", recipe=recipe)
    return [{"task_key": r["task_key"], **json.loads(r["payload_json"])} for r in rows]


def rejection_problems(warehouse: Any, recipe: str) -> dict[str, Any]:
    """What rejected paraphrases lost, by kind, with the rejected tasks' error lines."""
    kinds: Counter = Counter()
    examples = []
    for rejection in latest_rejections(warehouse, recipe):
        for line in rejection["errors"]:
            kind = next((name for prefix, name in ERROR_KINDS if line.startswith(prefix)), "other")
            kinds[kind] += 1
        examples.append({"task_key": rejection["task_key"], "errors": rejection["errors"][:8]})
    return {"by_kind": dict(kinds.most_common()), "rejected_tasks": examples[:20]}


def source_skipped(warehouse: Any, recipe: str) -> dict[str, int]:
    """Source rows the latest run of the recipe skipped, by reason."""
    rows = warehouse.select("report_source_skipped", recipe=recipe)
    return {row["reason"]: row["n"] for row in rows}


def medec_cot_report(warehouse: Any, recipe: str) -> dict[str, Any]:
    figures = generic_report(warehouse, recipe)
    by_variant: dict[str, Counter] = defaultdict(Counter)
    accepted_per_pair: Counter = Counter()
    for row in warehouse.select("report_task_state_by_key", recipe=recipe):
        note_id = row["task_key"].split(":")[1]
        pair_id, _, variant = note_id.partition("_")
        by_variant[variant][row["state"]] += 1
        accepted_per_pair[pair_id] += row["state"] == "accepted"
    figures["tasks_by_variant"] = {v: dict(c) for v, c in sorted(by_variant.items())}
    figures["pairs"] = {
        "seen": len(accepted_per_pair),
        "with_all_four_traces": sum(n == 4 for n in accepted_per_pair.values()),
    }
    samples = report_samples(warehouse, recipe)
    figures["labels_by_role"] = dict(
        Counter(f"{s['role']} {s['label']}" for s in samples).most_common()
    )
    figures["critic_error_sentence_match"] = distribution(
        [
            s["error_details"]["match_score"]
            for s in samples
            if s["role"] == "critic" and s["label"] == "ERROR"
        ]
    )
    figures["reasoning_words"] = distribution([len(s["reasoning"].split()) for s in samples])
    figures["duplicate_note_ids"] = sorted(
        n for n, count in Counter(s["note_id"] for s in samples).items() if count > 1
    )
    figures["rejections"] = [
        {"task_key": r["task_key"], "reason": r["reason"], "errors": r["errors"][:5]}
        for r in latest_rejections(warehouse, recipe)[:20]
    ]
    figures["source_skipped"] = source_skipped(warehouse, recipe)
    return figures
