"""Judge finished tasks again from the outputs already in the log, with no LLM call.

``revalidate`` runs each task's recipe again, exactly as a run does (``recipe.run`` and the
context's parse-and-validate step, so every validator and gate the recipe uses today applies),
but every stage call is answered from the log: the recorded answer to the same instructions
(the same user message) at the same stage and repair attempt. Nothing is sent.

- A recorded output that passes the current validators is used as before; one that fails is
  repaired only with a repair the log already holds. Without one the task is rejected, with
  the current validators' errors as the reason (``run --redo`` asks the teacher).
- A stage whose instructions the log never answered (an earlier stage now passes on another
  attempt, so the next prompt differs) cannot be judged without a call: the task keeps its
  verdict and is counted as unresolved.

- Where ``--min-judge-score`` is given, the judge gates again too, with the scores it gave:
  its recorded answer (the judge model's named with ``--judge-model``, else the model of the
  recipe's latest judge call) to the same sample is scored against the new threshold. A
  sample the log holds no score of, from that model, is unresolved (judging it takes a call).

The new verdicts (``validation_verdict``, ``sample_accepted`` / ``sample_rejected`` marked
``revalidated``) carry the current validator version; the latest verdict of a task decides its
membership in ``samples`` (sql/views/20_task_state.sql, sql/derived/sample_index.sql).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medstore.pipeline.context import TaskContext
from medstore.pipeline.judge import judge_sample
from medstore.pipeline.options import RunOptions
from medstore.pipeline.runner import accepted_event
from medstore.pipeline.stage import Stage, StageRejected
from medstore.pipeline.validator_version import judge_gate, validator_version
from medstore.resources import code_version
from medstore.sources.base import Task
from medstore.warehouse.events import (
    Envelope,
    Event,
    EventRecord,
    RepairRequested,
    RunFinished,
    RunStarted,
    SampleRejected,
    make_record,
)
from medstore.warehouse.hashing import canonical_json, content_hash, uuid7
from medstore.warehouse.store import Warehouse, append_records

if TYPE_CHECKING:
    from medstore.llm import GenerationParams
    from medstore.recipes.base import Recipe

SHOWN_CHANGES = 10
JUDGE_STAGE = "judge"  # the judge's calls (medstore/pipeline/judge.py, judge_stage)


class ReplayMissing(Exception):
    """The log holds no answer to a stage's instructions: judging it would take a call."""


def instructions_key(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    """What identifies a stage's instructions across backends: the hashes of the non-system
    messages among the first two (a prompt dialect may add the schema to the system prompt; a
    repair appends the rejected answer and the errors after them)."""
    return tuple(
        message.get("content_blob") or content_hash(message["content"])
        for message in messages[:2]
        if message["role"] != "system"
    )


class RecordedAnswers:
    """A task's recorded answers by (stage, attempt, instructions); the latest one wins. The
    judge's answers count only from ``judge_model`` (another judge's scores are not its)."""

    def __init__(
        self, warehouse: Warehouse, recipe: str, task_key: str, judge_model: str | None = None
    ) -> None:
        self.warehouse = warehouse
        self.blobs: dict[tuple[str, int, tuple[str, ...]], str] = {}
        for row in warehouse.select("revalidation_answers", recipe=recipe, task_key=task_key):
            if row["stage"] == JUDGE_STAGE and row["model"] != judge_model:
                continue
            key = (row["stage"], row["attempt"] or 0, instructions_key(json.loads(row["messages"])))
            self.blobs[key] = row["raw_output_blob"]

    def get(self, stage: str, attempt: int, messages: list[dict[str, str]]) -> str | None:
        return self.warehouse.blob(self.blobs.get((stage, attempt, instructions_key(messages))))


class Collector:
    """Stands in for the run's writer: keeps a task's records until its verdict is known."""

    def __init__(self) -> None:
        self.records: list[EventRecord] = []

    def submit(self, records: list[EventRecord]) -> Future:
        self.records.extend(records)
        done: Future = Future()
        done.set_result(None)
        return done


class ReplayContext(TaskContext):
    """A task context whose calls are answered by the log, and that never asks for a repair."""

    def __init__(self, revalidation: Revalidation, task: Task, answers: RecordedAnswers) -> None:
        super().__init__(revalidation, task)  # type: ignore[arg-type]
        self.answers = answers
        self.last_errors: list[str] = []

    def emit(self, event: Event, **where: Any) -> EventRecord:
        if isinstance(event, RepairRequested):  # nothing is requested: the log answers
            return make_record(event, Envelope())
        return super().emit(event, **where)

    def check(
        self, stage: Stage, text: str, variables: dict[str, Any], attempt: int
    ) -> tuple[Any, list[str]]:
        value, self.last_errors = super().check(stage, text, variables, attempt)
        return value, self.last_errors

    async def call(
        self,
        stage: Stage,
        messages: list[dict[str, str]],
        params: GenerationParams,
        attempt: int,
        backend: Any = None,  # the judge's calls are replayed from the log like the teacher's
    ) -> str:
        text = self.answers.get(stage.name, attempt, messages)
        if text is not None:
            return text
        if attempt == 0:
            raise ReplayMissing(stage.name)
        raise StageRejected(
            f"{stage.name}: fails validator version {self.runner.validator_version} and the log "
            f"holds no repair {attempt} (revalidated with no call; `run --redo` asks the teacher)",
            self.last_errors,
        )


@dataclass(frozen=True)
class RecordedJudge:
    """The judge as revalidation knows it: a model whose answers the log holds (never called)."""

    model: str


class RevalidationError(ValueError):
    """Revalidation cannot start as asked (a one-line reason)."""


@dataclass
class RevalidationResult:
    run_id: str
    recipe: str
    validator_version: str
    counts: Counter = field(default_factory=Counter)
    # (task key, what happened, the reason) for the first tasks whose membership changed.
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Revalidation:
    """Judges a recipe's finished tasks again under its current validators; see the module."""

    def __init__(
        self,
        warehouse: Warehouse,
        recipe: Recipe,
        *,
        everything: bool = False,
        source: str | None = None,
        options: RunOptions | None = None,
        judge_model: str | None = None,
    ) -> None:
        """``options``: the run options that judge (``min_judge_score``, ``judge_model``);
        ``judge_model``: the judge whose scores count, over ``options.judge_model`` (a run's
        resolved judge). RevalidationError when a threshold is given and the log holds no
        judge call of the recipe."""
        self.warehouse = warehouse
        self.recipe = recipe
        self.everything = everything
        self.source = source
        self.notes: list[str] = []
        self.run_id = uuid7()
        self.options = options or RunOptions()
        self.gating_judge = self.recorded_judge(judge_model or self.options.judge_model)
        self.validator_version = validator_version(
            recipe,
            judge_gate(self.gating_judge and self.gating_judge.model, self.options.min_judge_score),
        )
        self.secrets: tuple[str, ...] = ()
        self.writer = Collector()
        self.from_source: dict[str, Task] = {}

    def recorded_judge(self, model: str | None) -> RecordedJudge | None:
        """The judge whose recorded scores gate again; None without --min-judge-score."""
        if self.options.min_judge_score is None:
            return None
        model = model or self.warehouse.select_value(
            "revalidation_judge_model", recipe=self.recipe.name
        )
        if model is None:
            raise RevalidationError(
                f"--min-judge-score: the log holds no judge scores of {self.recipe.name} "
                "(run it with --judge-base-url/--judge-model first)"
            )
        return RecordedJudge(model)

    def tasks(self) -> list[dict[str, Any]]:
        """The finished tasks to judge: those judged under another version (or all)."""
        rows = self.warehouse.select("revalidation_tasks", recipe=self.recipe.name)
        if self.everything:
            return rows
        return [row for row in rows if row["validator_version"] != self.validator_version]

    def source_tasks(self) -> dict[str, Task]:
        """The tasks as the source gives them (the latest run's source unless told): the log
        keeps each record as canonical JSON, whose sorted keys would render other prompts
        than the run sent. Empty, with a note, when the source cannot be read now."""
        source = self.source or self.warehouse.select_value(
            "revalidation_source", recipe=self.recipe.name
        )
        try:
            return {
                item.key: item for item in self.recipe.read_source(source) if isinstance(item, Task)
            }
        except Exception as exc:  # any recipe's reader: a missing file, a moved dataset
            self.notes.append(f"source not readable ({exc}); records taken from the log")
            return {}

    def run(self) -> RevalidationResult:
        result = RevalidationResult(self.run_id, self.recipe.name, self.validator_version)
        rows = self.tasks()
        self.from_source = self.source_tasks() if rows else {}
        self.write(
            RunStarted(
                command="revalidate",
                config={
                    "recipe": self.recipe.name,
                    "recipe_options": self.recipe.options.model_dump(mode="json"),
                    "validator_version": self.validator_version,
                    "everything": self.everything,
                    "tasks_to_do": len(rows),
                    "min_judge_score": self.options.min_judge_score,
                    "judge_model": self.gating_judge and self.gating_judge.model,
                },
                code_version=code_version(),
                prompt_hashes=self.recipe.prompt_hashes(),
            )
        )
        for row in rows:
            self.judge(row, result)
        result.notes = self.notes
        self.write(RunFinished(status="completed", counts=dict(result.counts)))
        return result

    def write(self, event: Event) -> None:
        envelope = Envelope(self.run_id, self.recipe.name)
        append_records(self.warehouse.conn, [make_record(event, envelope)])

    def judge(self, row: dict[str, Any], result: RevalidationResult) -> None:
        """One task again: its new verdict is written with the stage verdicts that led to it."""
        task = self.from_source.get(row["task_key"]) or Task(
            row["task_key"],
            row["source_id"],
            json.loads(self.warehouse.blob(row["source_record_blob"]) or "{}"),
        )
        answers = RecordedAnswers(
            self.warehouse,
            self.recipe.name,
            task.key,
            self.gating_judge and self.gating_judge.model,
        )
        self.writer = Collector()
        ctx = ReplayContext(self, task, answers)
        result.counts["judged"] += 1
        try:
            sample = asyncio.run(self.replay(task, ctx))
        except ReplayMissing as missing:
            result.counts["unresolved"] += 1
            note = f"stage {missing} would need a call (`run --redo`)"
            result.changes.append((task.key, "unresolved", note))
            return
        except StageRejected as rejected:
            fallback = canonical_json(rejected.fallback) if rejected.fallback is not None else None
            verdict: Event = SampleRejected(
                reason=rejected.reason,
                errors=rejected.errors,
                fallback_sample=fallback,
                validator_version=self.validator_version,
                revalidated=True,
            )
            reason = rejected.reason
        else:
            verdict = accepted_event(
                self.recipe, task.key, sample, self.validator_version, revalidated=True
            )
            reason = ""
        ctx.emit(verdict)
        ctx.submit_pending()  # the context batches its events until it would wait
        append_records(self.warehouse.conn, self.writer.records)
        self.count(row, verdict, reason, result)

    async def replay(self, task: Task, ctx: ReplayContext) -> dict[str, Any]:
        """The recipe's stages, then the judge where it gates: every call answered by the log."""
        sample = await self.recipe.run(task, ctx)
        if self.gating_judge is not None:
            await judge_sample(ctx, self.gating_judge, sample, self.options.min_judge_score)  # type: ignore[arg-type]
        return sample

    def count(
        self, row: dict[str, Any], verdict: Event, reason: str, result: RevalidationResult
    ) -> None:
        now_in = verdict.event_type == "sample_accepted"
        was_in = row["state"] == "accepted"
        if now_in and not was_in:
            outcome = "joined"
        elif was_in and not now_in:
            outcome = "left"
        elif now_in and getattr(verdict, "sample_id", None) != row["sample_id"]:
            outcome = "changed"
        else:
            outcome = "unchanged"
        result.counts[outcome] += 1
        if outcome != "unchanged" and len(result.changes) < SHOWN_CHANGES:
            result.changes.append((row["task_key"], outcome, reason))
