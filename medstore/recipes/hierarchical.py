"""Recipe `hierarchical`: doctors' answers rewritten as pyramid-ordered markdown nested lists.

Replaces the "Hierarchical medical response generation" script. One stage, ``rewrite``, turns
the Doctor column of a consultation into a list that ``medstore.checks.structure`` checks: at
least three levels, at most five siblings per group, one marker style, the conclusion first,
and at least
``--min-preservation`` of the original answer's key terms kept. Violations are quoted in the
repair prompt; a rewrite still invalid after the repairs is rejected, and the rejection carries a
fallback sample (the original answer, ``_conversion_success`` false) that
``export --include-fallbacks`` can add through the ``hierarchical_fallbacks`` view.

Pyramid check: by heading vocabulary, not an LLM judge. The first top-level item's heading must
name a conclusion ("Assessment", "Answer", "Diagnosis", "Summary", "Bottom line", ...; see
``structure.CONCLUSION_TERMS``) and the prompt asks for "Assessment:". This costs no call, is the
same on every run, and a reader can see why an answer failed; a 135M embedded teacher would make
an unreliable judge, and a large one would double the cost of every sample.

Rows whose Doctor answer is empty or null are skipped with the reason "doctor answer is empty"
(a ``source_skipped`` event, shown by ``status`` and ``report``) and never reach the teacher.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from statistics import mean, median
from typing import Any, ClassVar

from pydantic import Field

from medstore.checks.gates import GateSpec, content_gates
from medstore.checks.structure import MIN_PRESERVATION, check_structure, strip_fence
from medstore.recipes.base import (
    Recipe,
    RecipeOptions,
    Skip,
    Stage,
    StageRejected,
    Task,
    generic_report,
)
from medstore.resources import resource_dir
from medstore.warehouse.hashing import canonical_json, json_hash, short_hash

SEVERITIES = {
    "low": "low",
    "low severity": "low",
    "medium": "medium",
    "medium severity": "medium",
    "high": "high",
    "high severity": "high",
}
CHAT_SYSTEM_PROMPT = (
    "You are a careful doctor answering a patient's question. Answer as a markdown nested list: "
    "the assessment first, then the reasons and advice, at least three levels deep and at most "
    "five points per level."
)
# A fallback keeps the doctor's prose; its chat must not promise a list it does not contain.
FALLBACK_SYSTEM_PROMPT = "You are a careful doctor answering a patient's question."
EMPTY_DOCTOR = "doctor answer is empty"
# The columns that identify a consultation: its source id is their hash, so the same row read
# from CSV, JSONL, Parquet or the hub is the same task (and the log's cache and resume apply).
IDENTITY_COLUMNS = ("Description", "Patient", "Doctor", "Status")


def consultation_id(record: dict[str, Any]) -> str:
    """A consultation's id: a hash of its identity columns (its task's source id)."""
    return "c-" + short_hash(
        canonical_json([text_of(record.get(name)) for name in IDENTITY_COLUMNS]), 12
    )


def severity(status: Any) -> str | None:
    """``low``, ``medium`` or ``high`` from a Status such as "medium severity" (the SQL of the
    fallback view applies the same rule)."""
    return SEVERITIES.get(str(status).strip(" ").lower()) if status is not None else None


def text_of(value: Any) -> str:
    return "" if value is None else str(value)


def structure_is_valid(answer: str, variables: dict[str, Any]) -> list[str]:
    """The rewrite stage's validator: every measured violation, one line each."""
    return check_structure(
        answer, variables["doctor"], min_preservation=variables["min_preservation"]
    ).errors


class HierarchicalOptions(RecipeOptions):
    min_preservation: float = Field(
        MIN_PRESERVATION,
        ge=0,
        le=1,
        description="Share of the doctor's key terms a rewrite must keep.",
    )


class HierarchicalRecipe(Recipe):
    name = "hierarchical"
    version = "1"
    description = (
        "Doctors' answers rewritten as pyramid-ordered nested lists (≥3 levels, ≤5 per level)"
    )
    stages = (
        Stage(
            "rewrite",
            "hierarchical/rewrite",
            0.30,
            None,
            1200,
            validators=(structure_is_valid, content_gates(GateSpec(list_lines=True))),
            max_repairs=2,
        ),
    )
    fallback_view = "hierarchical_fallbacks"
    Options = HierarchicalOptions
    options: HierarchicalOptions

    def default_source(self) -> str:
        return str(resource_dir("data") / "consultations_sample.jsonl")

    def read_source(self, source: str | None) -> Iterator[Task | Skip]:
        from medstore.sources.consultations import read_consultations

        first_seen: dict[str, str] = {}
        for row in read_consultations(source or self.default_source()):
            record = json.loads(json.dumps(row.record, default=str))  # plain JSON values only
            source_id = consultation_id(record)
            if not text_of(record["Doctor"]).strip():
                yield Skip(source_id, EMPTY_DOCTOR, row.where)
            elif not (text_of(record["Description"]) + text_of(record["Patient"])).strip():
                yield Skip(source_id, "patient question is empty", row.where)
            elif severity(record["Status"]) is None:
                yield Skip(
                    source_id,
                    "status is not low, medium or high severity",
                    f"{row.where}: {record['Status']!r}",
                )
            elif source_id in first_seen:
                yield Skip(
                    source_id,
                    "duplicate consultation",
                    f"{row.where} repeats {first_seen[source_id]}",
                )
            else:
                first_seen[source_id] = row.where
                yield Task(
                    self.task_key(source_id),
                    source_id,
                    {"row": row.index, "where": row.where, "consultation": record},
                )

    async def run(self, task: Task, ctx: Any) -> dict[str, Any]:
        record = task.record["consultation"]
        original = text_of(record["Doctor"])
        variables = {
            "description": text_of(record["Description"]).strip(),
            "patient": text_of(record["Patient"]).strip(),
            "doctor": original.strip(),
            "min_preservation": self.options.min_preservation,
        }
        try:
            rewrite = await ctx.generate(self.stage("rewrite"), variables)
        except StageRejected as rejected:
            raise StageRejected(
                rejected.reason, rejected.errors, fallback=fallback_sample(task.key, record)
            ) from rejected
        return {
            **record,
            "Doctor": strip_fence(rewrite),
            "_original_doctor": original,
            "_conversion_success": True,
        }

    def label(self, sample: dict[str, Any]) -> str | None:
        return severity(sample.get("Status"))

    group_by = "consultation id"
    # The source's own columns are text; any other column a source file has is stored as json.
    export_features: ClassVar[dict[str, Any]] = {
        "Description": "string",
        "Patient": "string",
        "Doctor": "string",
        "Status": "string",
        "_original_doctor": "string",
        "_conversion_success": "bool",
    }

    def group_key(self, task_key: str, sample: dict[str, Any]) -> str:
        return f"hierarchical:{task_key.split(':')[1]}"  # the task's source id: the consultation

    def to_messages(self, sample: dict[str, Any]) -> list[dict[str, str]]:
        """The patient's question in, the doctor's answer out: the list, or for a fallback the
        original prose under a system prompt that asks for no list."""
        question = "\n\n".join(
            part
            for part in (text_of(sample.get("Description")), text_of(sample.get("Patient")))
            if part.strip()
        )
        return [
            {
                "role": "system",
                "content": CHAT_SYSTEM_PROMPT
                if sample.get("_conversion_success", True)
                else FALLBACK_SYSTEM_PROMPT,
            },
            {"role": "user", "content": question},
            {"role": "assistant", "content": text_of(sample.get("Doctor"))},
        ]

    def report(self, warehouse: Any) -> dict[str, Any]:
        figures = generic_report(warehouse, self.name)
        figures.update(conversion_figures(warehouse, self.name, figures["tasks"]))
        return figures


def fallback_sample(task_key: str, record: dict[str, Any]) -> dict[str, Any]:
    """What a rejected task leaves: the original answer kept, flagged as not converted."""
    sample = {
        **record,
        "_original_doctor": text_of(record["Doctor"]),
        "_conversion_success": False,
    }
    return {"sample_id": "f-" + short_hash(f"{task_key}|{json_hash(sample)}"), **sample}


def conversion_figures(warehouse: Any, recipe: str, tasks: dict[str, int]) -> dict[str, Any]:
    """Success rate, depth and breadth distributions, violations behind rejections, fallbacks."""
    accepted, rejected = tasks.get("accepted", 0), tasks.get("rejected", 0)
    repaired = warehouse.select_one("report_accepted_after_repair", recipe=recipe)["n"]
    samples = [
        json.loads(row["sample_json"]) for row in warehouse.select("report_samples", recipe=recipe)
    ]
    skipped = warehouse.select("report_source_skipped", recipe=recipe)
    fallbacks = warehouse.select("report_hierarchical_fallbacks", recipe=recipe)
    return {
        "conversion": {
            "accepted": accepted,
            "rejected": rejected,
            "success_rate": round(accepted / (accepted + rejected), 4)
            if accepted + rejected
            else None,
            "accepted_after_repair": repaired,
        },
        **structure_figures(samples),
        "rejection_violations": rejection_violations(warehouse, recipe),
        "source_rows_skipped": {row["reason"]: row["n"] for row in skipped},
        "fallbacks": {
            "rows": sum(row["n"] for row in fallbacks),
            "by_label": {row["label"]: row["n"] for row in fallbacks},
            "export": "python cli.py export --recipe hierarchical --include-fallbacks ...",
        },
    }


def structure_figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Depth, widest level, top-level items and preservation of the accepted conversions."""
    depths: Counter = Counter()
    widest: Counter = Counter()
    top_level: Counter = Counter()
    kept: list[float] = []
    for sample in samples:
        measured = check_structure(sample.get("Doctor"), sample.get("_original_doctor"))
        depths[measured.depth] += 1
        widest[measured.max_siblings] += 1
        top_level[measured.top_level] += 1
        if measured.preservation is not None:
            kept.append(measured.preservation)
    return {
        "depth_distribution": by_number(depths),
        "max_siblings_distribution": by_number(widest),
        "top_level_items_distribution": by_number(top_level),
        "preservation": {
            "min": min(kept),
            "median": round(median(kept), 4),
            "mean": round(mean(kept), 4),
        }
        if kept
        else {},
    }


def rejection_violations(warehouse: Any, recipe: str) -> dict[str, int]:
    """The structure rules behind the rejections of tasks that end rejected, most common first."""
    violations: Counter = Counter()
    for row in warehouse.select("report_latest_rejections", recipe=recipe):
        for error in json.loads(row["payload_json"]).get("errors", []):
            violations[error.partition(":")[0]] += 1
    return dict(violations.most_common())


def by_number(counts: Counter) -> dict[str, int]:
    return {str(key): counts[key] for key in sorted(counts)}
