"""Trainer callbacks: every training log as a ``training_logged`` event, and a progress bar
showing the latest losses. They hook into any transformers (or TRL) Trainer."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm
from transformers import TrainerCallback

from medstore.warehouse.events import Envelope, TrainingLogged


class EventLogger(TrainerCallback):
    """Writes every training log (loss, learning rate, eval loss) as a ``training_logged`` event."""

    def __init__(self, record: Any, training_run_id: str, envelope: Envelope) -> None:
        self.record = record
        self.training_run_id = training_run_id
        self.envelope = envelope

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any):
        logs = logs or {}
        if "loss" not in logs and "eval_loss" not in logs:
            return
        event = TrainingLogged(
            training_run_id=self.training_run_id,
            step=state.global_step,
            epoch=logs.get("epoch", state.epoch),
            loss=logs.get("loss"),
            learning_rate=logs.get("learning_rate"),
            eval_loss=logs.get("eval_loss"),
            grad_norm=logs.get("grad_norm"),
        )
        self.record([(event, self.envelope)])


class LossProgress(TrainerCallback):
    """A progress bar over optimiser steps showing the latest train and eval loss."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = total_steps
        self.bar: tqdm | None = None
        self.shown: dict[str, str] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.bar = tqdm(
            total=state.max_steps or self.total_steps, desc="train", unit="step", dynamic_ncols=True
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any):
        if self.bar is None or not logs:
            return
        for key in ("loss", "eval_loss"):
            if key in logs:
                self.shown[key] = f"{logs[key]:.4f}"
        self.bar.set_postfix(self.shown, refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
