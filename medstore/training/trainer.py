"""Fine-tune a student on an export with TRL (SFTTrainer, or DPOTrainer with ``--method dpo``)
and a peft LoRA adapter: the base model's chat template, loss on the answer only. medstore adds
what TRL does not know: the run recorded as events (config, data fingerprint, loss per logging
step, eval loss, artefacts) by a TrainerCallback, over-long rows counted, the bundled model, and
``training_manifest.json``, which links the adapter back to the export manifest and through it
to every sample, prompt and teacher output.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.resources import code_version
from medstore.training.artefacts import no_artefacts, save_artefacts
from medstore.training.callbacks import EventLogger, LossProgress
from medstore.training.checkpoints import remove_empty_folders, start_checkpoints
from medstore.training.config import TrainConfig, TrainError
from medstore.training.heap import prepare_cpu_heap
from medstore.training.plan import TrainingPlan, plan_training
from medstore.training.trl_trainers import build_trainer
from medstore.warehouse.events import (
    Envelope,
    TrainingFinished,
    TrainingStarted,
    make_record,
)
from medstore.warehouse.hashing import uuid7
from medstore.warehouse.store import Warehouse


@dataclass
class TrainResult:
    training_run_id: str
    out_dir: Path
    metrics: dict[str, float]
    manifest: dict[str, Any]
    encoded: dict[str, int] = field(default_factory=dict)


def is_main_process() -> bool:
    """Under torchrun or accelerate (data parallel), rank 0 alone writes events and artefacts."""
    return int(os.environ.get("RANK", "0")) == 0


def event_writer(warehouse: Warehouse) -> Any:
    """``warehouse.append`` on the main process; elsewhere the records are made, not written."""
    if is_main_process():
        return warehouse.append
    return lambda pairs: [make_record(event, envelope) for event, envelope in pairs]


def train(warehouse: Warehouse, config: TrainConfig) -> TrainResult:
    """Check everything (data, device, model, output folder) before writing anything, then train,
    recording the run as events, and save the adapter or model with its manifest."""
    prepare_cpu_heap()  # before any tensor is allocated: see medstore/training/heap.py
    plan = plan_training(config)
    try:
        trainer = build_trainer(plan)
    except TrainError:
        remove_empty_folders(plan.out_dir)
        raise
    training_run_id = uuid7()
    record = event_writer(warehouse)
    started = record_started(record, plan, training_run_id)
    envelope = Envelope(recipe=plan.data.recipe, parent_event_id=started.event_id)
    if is_main_process():
        note = {"training_run_id": training_run_id, "data_fingerprint": plan.data.fingerprint}
        start_checkpoints(plan.out_dir, plan.resume_from is not None, note)
    trainer.add_callback(EventLogger(record, training_run_id, envelope))
    if config.progress:
        trainer.add_callback(LossProgress(plan.total_steps))
    status, message = "failed", None
    try:
        metrics = run_trainer(trainer, plan)
        manifest = (save_artefacts if is_main_process() else no_artefacts)(
            trainer.model, plan, training_run_id, started.event_id, metrics
        )
        status = "completed"
    except KeyboardInterrupt:
        status, message = "interrupted", "stopped by the user"
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        completed = status == "completed"
        finished = TrainingFinished(
            training_run_id=training_run_id,
            status=status,
            out_dir=str(plan.out_dir) if completed else None,
            artefacts=manifest["artefacts"] if completed else {},
            metrics=metrics if completed else {},
            training_manifest_hash=manifest["manifest_hash"] if completed else None,
            message=message,
        )
        record([(finished, envelope)])
    return TrainResult(training_run_id, plan.out_dir, metrics, manifest, plan.counts)


def record_started(record: Any, plan: TrainingPlan, training_run_id: str) -> Any:
    """The ``training_started`` event: what is trained, on what, from which export."""
    data, base = plan.data, plan.base
    event = TrainingStarted(
        training_run_id=training_run_id,
        base_model=base.name,
        weights_hash=base.weights_hash,
        method=plan.config.method,
        config=plan.run_config,
        data_dir=data.source,
        data_fingerprint=data.fingerprint,
        export_id=data.manifest.get("export_id") if data.manifest else None,
        export_manifest_hash=data.manifest_hash,
        examples=plan.counts,
        code_version=code_version(),
    )
    [started] = record([(event, Envelope(recipe=data.recipe))])
    return started


def run_trainer(trainer: Any, plan: TrainingPlan) -> dict[str, float]:
    """Train, then evaluate on the validation split if there is one; the run's metrics."""
    started_at = time.perf_counter()
    resume = str(plan.resume_from) if plan.resume_from else None
    outcome = trainer.train(resume_from_checkpoint=resume)
    runtime = time.perf_counter() - started_at
    metrics = {
        "train_loss": float(outcome.training_loss),
        "steps": float(trainer.state.global_step),
        "first_step": float(plan.resumed["step"] + 1 if plan.resumed else 1),
        "epochs": float(trainer.state.epoch or 0.0),
        "runtime_s": round(runtime, 3),
        "tokens_trained": float(trainer.tokens_trained),
        "tokens_per_s": round(trainer.tokens_trained / runtime, 2) if runtime else 0.0,
    }
    if plan.has_validation:
        metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
    return metrics
