"""What a recipe declares: its source, task keys, stages (prompt, schema, validators), samples.

The runner does the rest, the same way for every recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ..prompts import PromptTemplate, load_template

if TYPE_CHECKING:
    from ..runner import TaskContext

# A validator looks at a stage's parsed output (and the stage's variables) and lists problems.
Validator = Callable[[Any, dict[str, Any]], list[str]]


class SourceError(Exception):
    """The source cannot be read (missing file, wrong format): one line naming file and field."""


class StageRejected(Exception):
    """A stage output still invalid after every repair: the task is rejected with a reason."""

    def __init__(
        self, reason: str, errors: Sequence[str] = (), fallback: dict | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = list(errors)
        self.fallback = fallback


@dataclass
class Task:
    key: str
    source_id: str
    record: dict[str, Any]


@dataclass
class Skip:
    """A source record that will not become a task, and why (counted in status)."""

    source_id: str
    reason: str
    detail: str | None = None


@dataclass
class Stage:
    """One LLM call: its prompt template, parameters, output schema and checks."""

    name: str
    prompt: str
    temperature: float
    schema: type[BaseModel] | None = None
    max_tokens: int = 1024
    validators: Sequence[Validator] = field(default_factory=tuple)
    max_repairs: int = 2

    @property
    def template(self) -> PromptTemplate:
        return load_template(self.prompt)

    def json_schema(self) -> dict[str, Any] | None:
        return schema_of(self.schema) if self.schema else None


@cache
def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """JSON schema of a pydantic model, built once (it is asked for on every call)."""
    return model.model_json_schema()


class Recipe:
    """Subclasses set the class attributes and implement ``read_source`` and ``run``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    stages: ClassVar[Sequence[Stage]] = ()
    # Fields left out of the content hash, so re-running unchanged work dedups.
    volatile_fields: ClassVar[tuple[str, ...]] = ()
    # A recipe may send source data only to loopback backends unless the user allows a host.
    credentialed_source: ClassVar[bool] = False
    # Extra `run` options this recipe reads from self.options (click.Option objects).
    cli_options: ClassVar[Sequence[Any]] = ()
    # The SQL view the exporter reads (same columns as `samples`), e.g. a balanced view.
    dataset_view: ClassVar[str] = "samples"
    # A view of extra rows `export --include-fallbacks` adds (same columns), e.g. kept originals.
    fallback_view: ClassVar[str | None] = None
    # Licences and attributions an export of this recipe's data must carry.
    licences: ClassVar[Sequence[str]] = ()

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}

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

    def to_messages(self, sample: dict[str, Any]) -> list[dict[str, str]]:
        """The sample as a chat (system / user / assistant) for supervised fine-tuning."""
        raise NotImplementedError(f"recipe {self.name} has no chat form")

    def report(self, warehouse: Any) -> dict[str, Any]:
        """Figures for `cli.py report`: tasks by state, labels, reasons. Recipes add their own."""
        return generic_report(warehouse, self.name)

    def data_use_decision(self, backend: Any) -> Any:
        """For a credentialed source, whether its records may go to ``backend`` (an event the
        runner logs before any call); None when the source carries no such limit."""
        if not self.credentialed_source:
            return None
        from ..data_use import decide_data_use

        return decide_data_use(backend, self.options.get("allow_remote_host") or ())

    def prompt_hashes(self) -> dict[str, str]:
        templates = {stage.prompt for stage in self.stages} | {"common/repair"}
        return {name: load_template(name).hash for name in sorted(templates)}

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def generic_report(warehouse: Any, recipe: str) -> dict[str, Any]:
    states = warehouse.query(
        "SELECT state, count(*) AS n FROM task_state WHERE recipe = ? GROUP BY state", (recipe,)
    )
    labels = warehouse.query(
        "SELECT coalesce(label, '(none)') AS label, count(*) AS n FROM samples WHERE recipe = ?"
        " GROUP BY 1 ORDER BY 1",
        (recipe,),
    )
    reasons = warehouse.query(
        "SELECT reason, count(*) AS n FROM task_state WHERE recipe = ? AND state IN"
        " ('rejected', 'failed') GROUP BY reason ORDER BY n DESC",
        (recipe,),
    )
    return {
        "recipe": recipe,
        "tasks": {row["state"]: row["n"] for row in states},
        "labels": {row["label"]: row["n"] for row in labels},
        "rejection_reasons": {row["reason"]: row["n"] for row in reasons},
    }
