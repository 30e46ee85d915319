"""What a recipe declares: its options, source, task keys, stages (prompt, schema, validators)
and samples. The runner does the rest, the same way for every recipe.

A recipe's options are one pydantic model (``Options``): defaults, bounds and help live there
once, and ``run`` builds its command-line options from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from medstore.pipeline.prompts import load_template
from medstore.pipeline.stage import Stage, StageRejected, Validator
from medstore.sources.base import Skip, SourceError, Task

if TYPE_CHECKING:
    from medstore.pipeline.context import TaskContext

__all__ = [
    "CredentialedOptions",
    "Recipe",
    "RecipeOptions",
    "Skip",
    "SourceError",
    "Stage",
    "StageRejected",
    "Task",
    "Validator",
    "generic_report",
]


class RecipeOptions(BaseModel):
    """A recipe's own `run` options, one field each: its default, bounds and help."""

    model_config = ConfigDict(extra="forbid")


class CredentialedOptions(RecipeOptions):
    """Options every recipe with a credentialed source takes."""

    allow_remote_host: list[str] = Field(
        default_factory=list,
        description="A non-local host that may receive the credentialed data (repeatable).",
    )


class Recipe:
    """Subclasses set the class attributes and implement ``read_source`` and ``run``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    stages: ClassVar[Sequence[Stage]] = ()
    # The recipe's `run` options (a RecipeOptions subclass); `run` generates its flags from it.
    Options: ClassVar[type[RecipeOptions]] = RecipeOptions
    # Fields left out of the content hash, so re-running unchanged work dedups.
    volatile_fields: ClassVar[tuple[str, ...]] = ()
    # A recipe may send source data only to loopback backends unless the user allows a host.
    credentialed_source: ClassVar[bool] = False
    # The SQL view the exporter reads (same columns as `samples`), e.g. a balanced view.
    dataset_view: ClassVar[str] = "samples"
    # A view of extra rows `export --include-fallbacks` adds (same columns), e.g. kept originals.
    fallback_view: ClassVar[str | None] = None
    # Licences and attributions an export of this recipe's data must carry.
    licences: ClassVar[Sequence[str]] = ()
    # What keeps samples together in one export split (see ``group_key``), in words.
    group_by: ClassVar[str] = "task"
    # Labels an export keeps balanced (as many of each) inside every split.
    balanced_labels: ClassVar[tuple[str, ...]] = ()
    # The export's column type of each sample field ("string", "int64", "float64", "bool",
    # "json", {field: type} for a struct, [type] for a list; undeclared fields are "json"), so
    # Arrow and Parquet types never depend on the data (see medstore.training.export_features).
    export_features: ClassVar[dict[str, Any]] = {}
    # Stages whose rejected outputs can make a preference pair (see ``rejected_sample``).
    preference_stages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: RecipeOptions | dict[str, Any] | None = None) -> None:
        if isinstance(options, self.Options):
            self.options = options
        else:
            self.options = self.Options.model_validate(options or {})

    def task_key(self, source_id: str, *parts: str) -> str:
        """Deterministic: recipe + source record id (+ variant) + recipe version."""
        return ":".join([self.name, source_id, *parts, f"v{self.version}"])

    def default_source(self) -> str | None:
        """The source used when --source is not given."""
        return None

    def read_source(self, source: str | None) -> Iterator[Task | Skip]:
        raise NotImplementedError

    async def run(self, task: Task, ctx: TaskContext) -> dict[str, Any]:
        raise NotImplementedError

    def label(self, sample: dict[str, Any]) -> str | None:
        return None

    def group_key(self, task_key: str, sample: dict[str, Any]) -> str:
        """The group a sample belongs to: every member of a group goes to the same export split,
        so near-duplicates of one source never sit on both sides. Default: its own task (the task
        key without its version)."""
        return re.sub(r":v[^:]*$", "", task_key)

    def to_messages(self, sample: dict[str, Any]) -> list[dict[str, str]]:
        """The sample as a chat (system / user / assistant) for supervised fine-tuning."""
        raise NotImplementedError(f"recipe {self.name} has no chat form")

    def rejected_sample(
        self, sample: dict[str, Any], stage: str, raw_output: str, errors: list[str]
    ) -> dict[str, Any] | None:
        """The accepted ``sample`` as a rejected output of ``stage`` (its raw text and the
        validation errors it got) would have made it, for a preference pair's rejected answer;
        None when that output makes no pair. Only called for ``preference_stages``."""
        return None

    def report(self, warehouse: Any) -> dict[str, Any]:
        """Figures for `cli.py report`: tasks by state, labels, reasons. Recipes add their own."""
        return generic_report(warehouse, self.name)

    def data_use_decision(self, backend: Any) -> Any:
        """For a credentialed source, whether its records may go to ``backend`` (an event the
        runner logs before any call); None when the source carries no such limit."""
        if not self.credentialed_source:
            return None
        from medstore.pipeline.data_use import decide_data_use

        return decide_data_use(backend, getattr(self.options, "allow_remote_host", ()))

    def prompt_hashes(self) -> dict[str, str]:
        templates = {stage.template.name: stage.template for stage in self.stages}
        templates["common/repair"] = load_template("common/repair")
        return {name: templates[name].hash for name in sorted(templates)}

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def generic_report(warehouse: Any, recipe: str) -> dict[str, Any]:
    """The figures every recipe reports: tasks by state, samples by label, rejection reasons."""
    states = warehouse.select("report_task_states", recipe=recipe)
    labels = warehouse.select("report_labels", recipe=recipe)
    reasons = warehouse.select("report_rejection_reasons", recipe=recipe)
    return {
        "recipe": recipe,
        "tasks": {row["state"]: row["n"] for row in states},
        "labels": {row["label"]: row["n"] for row in labels},
        "rejection_reasons": {row["reason"]: row["n"] for row in reasons},
        "quality": quality_figures(warehouse, recipe),
        **gate_report(warehouse, recipe),
    }


def quality_figures(warehouse: Any, recipe: str) -> dict[str, Any]:
    """The latest quality scan: near-duplicate clusters and contamination hits (with the
    evaluation document each matched), as the ``quality_flags`` view has them."""
    scan = warehouse.select_one("quality_latest_scan", recipe=recipe)
    if scan is None:
        return {"scanned": False}
    payload = json.loads(scan["payload_json"])
    kinds = warehouse.select("quality_report_counts", recipe=recipe)
    return {
        "scanned_utc": scan["created_utc"],
        "samples_scanned": payload["samples"],
        "eval_sets": {s["name"]: s["documents"] for s in payload.get("eval_sets", [])},
        "duplicate_clusters": payload["clusters"],
        "flagged": {row["kind"]: row["samples"] for row in kinds},
        "contamination_hits": warehouse.select("quality_report_hits", recipe=recipe, limit=10),
        "notes": payload.get("notes", []),
    }


def gate_report(warehouse: Any, recipe: str, worst: int = 3) -> dict[str, Any]:
    """Acceptance by content gate (share of tasks that never failed it) and each gate's worst
    examples (the tasks that failed it most often)."""
    gates = [
        {
            "gate": row["gate"],
            "passed": f"{1 - row['tasks_failed'] / row['tasks']:.0%}" if row["tasks"] else "-",
            "tasks_failed": row["tasks_failed"],
            "rejected": row["rejected"],
            "repaired": row["repaired"],
        }
        for row in warehouse.select("report_gates", recipe=recipe)
    ]
    examples = [
        {
            "gate": row["gate"],
            "task": row["task_key"],
            "failures": row["failures"],
            "example": row["example"][:100],
        }
        for row in warehouse.select("report_gate_worst", recipe=recipe, n=worst)
    ]
    judged = warehouse.select("report_judge_scores", recipe=recipe)
    figures: dict[str, Any] = {"gates": gates, "gate_worst_examples": examples}
    if judged:
        figures["judge_scores"] = [
            {"score": row["score"], "samples": row["n"], "passed": row["passed"]} for row in judged
        ]
    return figures
