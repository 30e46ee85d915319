"""Scoring a model behind an endpoint (an API teacher, vLLM, Ollama) on an eval task, through the
same runner, backends, cache and log as ``run``.

The eval's prompts become tasks of an internal recipe, ``eval-<task>``, one per prompt, keyed by
the prompt, the backend's identity and the generation settings: a run that stops resumes where it
stopped, an answered prompt is never paid for twice (it replays from the log), and every answer
is an accepted sample whose provenance is the request and response events like any other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from medstore.llm import BackendOptions, BackendUnavailable, GenerationParams, make_backend
from medstore.pipeline.budget import PriceUnknown
from medstore.pipeline.options import RunOptions
from medstore.pipeline.prompts import PromptTemplate
from medstore.pipeline.runner import Runner
from medstore.recipes.base import Recipe, Stage, Task
from medstore.training.eval_tasks import EvalError, Example
from medstore.warehouse.hashing import canonical_json, content_hash, short_hash
from medstore.warehouse.store import Warehouse


@dataclass
class EndpointAnswers:
    """What an endpoint answered, and what the answers cost (all runs that made them)."""

    model: str
    outputs: list[str]
    run_id: str
    asked: int  # prompts answered in this run
    reused: int  # prompts answered by earlier runs
    cost_usd: float | None
    tokens: int
    cache_replays: int


class EvalRecipe(Recipe):
    """One task per prompt; its sample is the raw answer. Not a plugin: `run` cannot use it."""

    def __init__(
        self,
        task: str,
        examples: list[Example],
        tag: str,
        max_new_tokens: int,
        seed: int | None,
        credentialed: bool = False,
    ) -> None:
        super().__init__()
        # Prompts from a credentialed export (MIMIC) go only where the data-use guard allows.
        self.credentialed_source = credentialed  # type: ignore[misc]
        self.name = f"eval-{task}"  # type: ignore[misc]
        self.description = f"Answers of an endpoint to the {task} eval"  # type: ignore[misc]
        self.examples = examples
        self.tag = tag
        self.seed = seed
        # The prompts are the task's own (not a template): the stage's template only names them
        # in the log, by the hash of the system prompts.
        systems = sorted(
            {m["content"] for e in examples for m in e.messages if m["role"] == "system"}
        )
        template = PromptTemplate(
            f"eval/{task}", "\n".join(systems), "", content_hash(canonical_json(systems))
        )
        self.stages = (Stage("answer", template, 0.0, None, max_new_tokens),)  # type: ignore[misc]

    def task_key_of(self, index: int, example: Example) -> str:
        prompt = short_hash(canonical_json(example.messages), 12)
        return self.task_key(example.key or str(index), prompt, self.tag)

    def read_source(self, source: str | None) -> Any:
        for index, example in enumerate(self.examples):
            record = {"key": example.key, "messages": example.messages}
            yield Task(self.task_key_of(index, example), example.key or str(index), record)

    async def run(self, task: Task, ctx: Any) -> dict[str, Any]:
        stage = self.stages[0]
        params = GenerationParams(temperature=0.0, max_tokens=stage.max_tokens, seed=self.seed)
        output = await ctx.call(stage, task.record["messages"], params, 0)
        # The task key is part of the sample, so two models giving the same answer to a prompt
        # stay two samples (the samples view keeps one of identical ones).
        return {"example": task.record["key"], "eval_task_key": task.key, "output": output}


def generation_tag(backend: Any, max_new_tokens: int, seed: int | None) -> str:
    return short_hash(
        canonical_json({**backend.identity(), "max_tokens": max_new_tokens, "seed": seed}), 12
    )


def endpoint_answers(
    warehouse: Warehouse,
    backend_options: BackendOptions,
    task: str,
    examples: list[Example],
    *,
    max_new_tokens: int,
    run_options: RunOptions,
    credentialed: bool = False,
) -> EndpointAnswers:
    """Every example's answer from the endpoint: from earlier runs where the log has it, else
    asked now. A run that stops early (Ctrl-C, --max-cost) is an EvalError: run eval again."""
    try:
        backend = make_backend(backend_options)
    except BackendUnavailable as exc:
        raise EvalError(str(exc)) from exc
    tag = generation_tag(backend, max_new_tokens, run_options.seed)
    recipe = EvalRecipe(task, examples, tag, max_new_tokens, run_options.seed, credentialed)
    options = run_options.model_copy(
        update={"config": {"command": "eval", "task": task, "max_new_tokens": max_new_tokens}}
    )
    try:
        runner = Runner(warehouse, recipe, backend, options)
        result = asyncio.run(runner.run(None))
    except (BackendUnavailable, PriceUnknown) as exc:
        raise EvalError(str(exc)) from exc
    if result.status != "completed":
        raise EvalError(
            f"the eval run {result.run_id} of {backend.model} ended {result.status}; run eval "
            "again to resume it (answered prompts replay from the log)"
        )
    by_task = {row["task_key"]: row for row in warehouse.select("eval_answers", recipe=recipe.name)}
    keys = [recipe.task_key_of(index, example) for index, example in enumerate(examples)]
    rows = [by_task.get(key) for key in keys]
    unanswered = sum(row is None for row in rows)
    if unanswered:
        raise EvalError(
            f"{unanswered} of {len(rows)} prompts got no answer from {backend.model} (see "
            f"`python cli.py status`); run eval again to ask only those"
        )
    costs = [row["cost_usd"] for row in rows if row["cost_usd"] is not None]
    return EndpointAnswers(
        model=backend.model or backend.name,
        outputs=[orjson.loads(row["sample_json"])["output"] for row in rows],
        run_id=result.run_id,
        asked=int(result.counts.get("accepted", 0)),
        reused=int(result.counts.get("skipped_done", 0)),
        cost_usd=round(sum(costs), 6) if costs else None,
        tokens=sum(row["tokens"] or 0 for row in rows),
        cache_replays=int(result.counts.get("cache_replays", 0)),
    )
