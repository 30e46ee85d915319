"""Score models on an eval task side by side, and record each score as an ``eval_result`` event.

The models of one eval: a model behind an endpoint (an API teacher; ``medstore.training.
eval_endpoint``), and a local model (``medstore.training.eval_local``) with the base model it was
trained from. For ``medec-detect`` each model's answers become a MEDIQA-CORR run file, written
next to the scores and scored as the shared task scores it; ``score_run_file`` scores a run file
made elsewhere. A trained model is scored on held-out data only (``eval_heldout``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.llm import BackendOptions
from medstore.pipeline.options import RunOptions
from medstore.recipes.base import SourceError
from medstore.training.eval_heldout import HeldOut, check_held_out, training_manifest
from medstore.training.eval_local import Candidate, model_runs, resolve_candidate
from medstore.training.eval_tasks import TASK_SCORE, TASKS, EvalError, Example, task_examples
from medstore.warehouse.events import Envelope, EvalResult
from medstore.warehouse.hashing import content_hash, uuid7
from medstore.warehouse.store import Warehouse

__all__ = ["EvalError", "EvalReport", "EvalRequest", "evaluate", "resolve_candidate"]


@dataclass
class EvalRequest:
    """What to score, on what. ``endpoint`` names a model behind a server; ``model`` a local one
    (a `train` output folder, bundled, a hub id or a model folder)."""

    task: str
    model: str | None = None
    endpoint: BackendOptions | None = None
    data: str | None = None
    limit: int = 50
    max_new_tokens: int = 256
    batch_size: int = 8
    with_base: bool = True
    prompt: str = "auto"  # medec-detect: critic | safe | paper, or the student's own
    split: str | None = None  # structure / json-validity from an export: test or validation
    allow_overlap: bool = False
    run_options: RunOptions = field(default_factory=lambda: RunOptions(progress=False))
    out_dir: str | None = None  # where medec-detect run files go [default: runs/eval/EVAL_ID]


@dataclass
class Score:
    role: str  # teacher | endpoint | base | trained | run-file
    model: str
    metrics: dict[str, float]
    event_id: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    run_file: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalReport:
    eval_id: str
    task: str
    data: str
    examples: int
    scores: list[Score]
    held_out: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class ModelRun:
    """One model to score: its role and name, and what gets its answers (and run details)."""

    role: str
    model: str
    answers: Callable[[], tuple[list[str], dict[str, Any]]]
    base_model: str | None = None
    training_run_id: str | None = None


def medec_prompt_for(requested: str, candidate: Candidate | None) -> str:
    """``auto``: the prompt the student was trained on (medec-safe's, else the critic's)."""
    if requested != "auto":
        return requested
    manifest = training_manifest(Path(candidate.spec)) if candidate else None
    recipe = ((manifest or {}).get("data") or {}).get("recipe") or {}
    return "safe" if recipe.get("name") == "medec-safe" else "critic"


def student_teachers(candidate: Candidate | None) -> set[str]:
    """The teacher models behind the student's training export (from its manifest)."""
    manifest = training_manifest(Path(candidate.spec)) if candidate else None
    export_manifest = ((manifest or {}).get("data") or {}).get("export_manifest")
    if not export_manifest or not Path(export_manifest).is_file():
        return set()
    export = json.loads(Path(export_manifest).read_text(encoding="utf-8"))
    return set((export.get("teachers") or {}).get("models") or {})


def credentialed_data(data: str | None) -> bool:
    """Whether the eval's prompts come from an export of credentialed data (MIMIC)."""
    manifest = Path(data) / "manifest.json" if data else None
    if manifest is None or not manifest.is_file():
        return False
    return bool(json.loads(manifest.read_text(encoding="utf-8")).get("credentialed_source"))


def endpoint_run(
    warehouse: Warehouse, request: EvalRequest, examples: list[Example], teachers: set[str]
) -> ModelRun:
    from medstore.training.eval_endpoint import endpoint_answers

    assert request.endpoint is not None
    name = request.endpoint.model or request.endpoint.backend or "endpoint"

    def answers() -> tuple[list[str], dict[str, Any]]:
        got = endpoint_answers(
            warehouse,
            request.endpoint,  # type: ignore[arg-type]
            request.task,
            examples,
            max_new_tokens=request.max_new_tokens,
            run_options=request.run_options,
            credentialed=credentialed_data(request.data),
        )
        details = {
            "run_id": got.run_id,
            "cost_usd": got.cost_usd,
            "tokens": got.tokens,
            "asked": got.asked,
            "reused": got.reused,
            "cache_replays": got.cache_replays,
        }
        return got.outputs, details

    return ModelRun("teacher" if name in teachers else "endpoint", name, answers)


def local_runs(
    request: EvalRequest, candidate: Candidate, examples: list[Example]
) -> list[ModelRun]:
    runs = model_runs(
        candidate, examples, request.max_new_tokens, request.batch_size, request.with_base
    )
    return [
        ModelRun(
            role,
            name,
            lambda generate=generate: (generate(), {}),
            base_model=candidate.base_spec,
            training_run_id=candidate.training_run_id if role == "trained" else None,
        )
        for role, name, generate in runs
    ]


def load_examples(request: EvalRequest, candidate: Candidate | None) -> tuple[str, list[Example]]:
    if request.task not in TASKS:
        raise EvalError(f"unknown task {request.task!r}: expected one of {', '.join(TASKS)}")
    prompt = medec_prompt_for(request.prompt, candidate)
    try:
        source, examples = task_examples(
            request.task, request.data, request.limit, prompt=prompt, split=request.split
        )
    except SourceError as exc:
        raise EvalError(str(exc)) from exc
    if not examples:
        raise EvalError(f"{source}: no examples for task {request.task}")
    return source, examples


def evaluate(warehouse: Warehouse, request: EvalRequest) -> EvalReport:
    """Score the endpoint (if any), then the local model and its base; one event per model."""
    if request.endpoint is None and request.model is None:
        raise EvalError("nothing to evaluate: name a model (--model) or an endpoint (--backend)")
    candidate = resolve_candidate(request.model) if request.model else None
    source, examples = load_examples(request, candidate)
    held = HeldOut()
    if candidate is not None and candidate.training_run_id:
        held = check_held_out(Path(candidate.spec), examples, request.allow_overlap)
    runs: list[ModelRun] = []
    if request.endpoint is not None:
        runs.append(endpoint_run(warehouse, request, examples, student_teachers(candidate)))
    if candidate is not None:
        runs += local_runs(request, candidate, examples)
    report = EvalReport(uuid7(), request.task, source, len(examples), [], held.as_dict())
    out_dir = Path(request.out_dir or Path("runs") / "eval" / report.eval_id)
    config = {
        "limit": request.limit,
        "max_new_tokens": request.max_new_tokens,
        "decoding": "greedy",
        "prompt": medec_prompt_for(request.prompt, candidate),
        "held_out": held.as_dict(),
    }
    for run in runs:
        outputs, details = run.answers()
        scored = record_score(warehouse, report, run, (outputs, details), examples, out_dir, config)
        report.scores.append(scored)
    return report


def record_score(
    warehouse: Warehouse,
    report: EvalReport,
    run: ModelRun,
    answered: tuple[list[str], dict[str, Any]],
    examples: list[Example],
    out_dir: Path,
    config: dict[str, Any],
) -> Score:
    """Score one model's answers, write its run file (medec-detect), record the event."""
    outputs, details = answered
    scored = TASK_SCORE[report.task](outputs, examples)
    run_file = None
    if scored.run_file is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{run.role}.txt"
        path.write_text(scored.run_file, encoding="utf-8")
        run_file = str(path)
    event = EvalResult(
        eval_id=report.eval_id,
        task=report.task,
        model=run.model,
        role=run.role,
        base_model=run.base_model,
        training_run_id=run.training_run_id,
        examples=len(examples),
        metrics=scored.metrics,
        data=report.data,
        config={**config, **details},
        counts=scored.counts,
        run_file=run_file,
        run_file_hash=content_hash(scored.run_file) if scored.run_file is not None else None,
    )
    [record] = warehouse.append([(event, Envelope())])
    return Score(
        run.role, run.model, scored.metrics, record.event_id, scored.counts, run_file, details
    )


def score_run_file(warehouse: Warehouse, run_file: str, data: str | None) -> EvalReport:
    """Score a MEDIQA-CORR run file against a MEDEC CSV, as the official script does; no model."""
    from medstore.training.eval_tasks import medec_reference
    from medstore.training.mediqa_corr import CorrError, read_run_file, score_run

    reference = medec_reference(data)
    try:
        run = read_run_file(run_file)
        scored = score_run(reference, run)
    except CorrError as exc:
        raise EvalError(str(exc)) from exc
    text = Path(run_file).read_text(encoding="utf-8")
    report = EvalReport(uuid7(), "medec-detect", reference.path, len(reference.texts), [])
    report.problems = scored.problems
    event = EvalResult(
        eval_id=report.eval_id,
        task="medec-detect",
        model=str(Path(run_file).resolve()),
        role="run-file",
        examples=len(reference.texts),
        metrics=scored.metrics,
        data=reference.path,
        counts=scored.counts,
        run_file=str(Path(run_file).resolve()),
        run_file_hash=content_hash(text),
    )
    [record] = warehouse.append([(event, Envelope())])
    report.scores.append(
        Score("run-file", run_file, scored.metrics, record.event_id, scored.counts, run_file)
    )
    return report
