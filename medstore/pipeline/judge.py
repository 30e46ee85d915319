"""The optional judge stage: a second model scores each candidate sample against the recipe's
rubric (clinical correctness, consistency with the source, completeness), after every other
check has passed and before the sample is accepted.

The judge's call goes through the task's ``generate`` like any stage (``judge`` stage, request
and response events, cache replay, retries, cost), only to another backend; its verdict is a
JSON object (``JudgeVerdict``) and is recorded as a ``validation_verdict`` of the
``judge_score`` stage with the scores in ``metrics``. ``--min-judge-score`` turns the score into
a gate: a sample below it is rejected with the judge's reasons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from medstore.checks.gates import GateSpec, content_gates
from medstore.pipeline.prompts import load_template
from medstore.pipeline.stage import Stage, StageRejected
from medstore.warehouse.events import ValidationVerdict

if TYPE_CHECKING:
    from medstore.llm.base import Backend
    from medstore.pipeline.context import TaskContext
    from medstore.pipeline.options import RunOptions

CRITERIA = ("clinical_correctness", "consistency", "completeness")


class JudgeVerdict(BaseModel):
    clinical_correctness: int = Field(ge=1, le=5)
    consistency: int = Field(ge=1, le=5)
    completeness: int = Field(ge=1, le=5)
    score: int = Field(ge=1, le=5, description="Overall, 1 (unusable) to 5 (excellent).")
    reasons: list[str] = Field(json_schema_extra={"minItems": 1, "maxItems": 5})


def wants_judge(options: RunOptions) -> bool:
    return any((options.judge_backend, options.judge_base_url, options.judge_model))


def make_judge(options: RunOptions) -> Backend | None:
    """The judge's backend, or None when no --judge-* option is given; ValueError for a
    --min-judge-score without a judge (it would gate nothing)."""
    if not wants_judge(options):
        if options.min_judge_score is not None:
            raise ValueError(
                "--min-judge-score needs a judge: give --judge-base-url, --judge-model or "
                "--judge-backend"
            )
        return None
    from medstore.llm import BackendOptions, make_backend

    return make_backend(
        BackendOptions(
            backend=options.judge_backend,
            base_url=options.judge_base_url,
            model=options.judge_model,
            api_key_env=options.judge_api_key_env,
        )
    )


def judge_stage(recipe: str) -> Stage:
    """The judge's stage for ``recipe``: its rubric prompt (prompts/<recipe>/judge.md)."""
    template = f"{recipe}/judge"
    try:
        load_template(template)
    except Exception:  # a plugin recipe without its own rubric gets the generic one
        template = "common/judge"
    return Stage(
        "judge",
        template,
        0.0,
        JudgeVerdict,
        500,
        validators=(content_gates(GateSpec(required_lists=frozenset({"reasons"}))),),
        max_repairs=1,
    )


async def judge_sample(
    ctx: TaskContext, judge: Backend, sample: dict[str, Any], min_score: float | None
) -> JudgeVerdict:
    """Score one candidate; raises StageRejected when it scores below ``min_score``."""
    stage = judge_stage(ctx.runner.recipe.name)
    shown = {k: v for k, v in sample.items() if k not in ctx.runner.recipe.volatile_fields}
    verdict = await ctx.generate(stage, {"source": ctx.task.record, "sample": shown}, backend=judge)
    passed = min_score is None or verdict.score >= min_score
    errors = (
        []
        if passed
        else [
            f"judge_score: judge: the judge scores {verdict.score} (below --min-judge-score "
            f"{min_score:g}): {'; '.join(verdict.reasons)[:400]}"
        ]
    )
    ctx.emit(
        ValidationVerdict(
            passed=passed,
            errors=errors,
            metrics={
                "judge_score": verdict.score,
                "judge_model": judge.model,
                **{name: getattr(verdict, name) for name in CRITERIA},
            },
            gates=[{"gate": "judge", "field": "judge_score", "error": errors[0]}] if errors else [],
        ),
        stage="judge_score",
    )
    if not passed:
        raise StageRejected(f"judge: score {verdict.score} below {min_score:g}", errors)
    return verdict
