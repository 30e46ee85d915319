"""A training run checked and prepared before anything is written: output folder, device, data,
base model, encoded conversations, the model to train and the number of steps."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from medstore.training.checkpoints import check_out_dir, check_resumable, checkpoint_step
from medstore.training.config import TrainConfig, TrainError
from medstore.training.data import TrainingData, load_training_data
from medstore.training.encoding import Encoded, encode_conversations
from medstore.training.models import (
    LoadedModel,
    ensure_padding,
    load_student,
    prepare_model,
    read_chat_template,
)
from medstore.training.preferences import check_preference_lengths

TRAINING_SPLITS = ("train", "validation")


@dataclass
class TrainingPlan:
    """What ``train`` runs: the checked inputs, the loaded model, and what the run records."""

    config: TrainConfig
    out_dir: Path
    device: str
    data: TrainingData
    base: LoadedModel
    pad_id: int
    encoded: dict[str, Encoded]
    model: Any  # the base model, or the LoRA adapter around it
    total_steps: int
    logging_steps: int
    counts: dict[str, int]  # examples per split, truncated, dropped, tokens
    run_config: dict[str, Any]  # the config as recorded, with the defaults resolved
    resume_from: Path | None = None  # the checkpoint an interrupted run goes on from
    resumed: dict[str, Any] | None = None  # what it was: its run id, checkpoint and step
    pairs: dict[str, list[Any]] = field(default_factory=dict)  # DPO: the pairs kept, by split

    @property
    def has_validation(self) -> bool:
        if self.config.objective == "dpo":
            return bool(self.pairs.get("validation"))
        validation = self.encoded.get("validation")
        return bool(validation and validation.examples)


def check_device(config: TrainConfig) -> str:
    """The device, and the one-line refusals of what this machine or install cannot do."""
    cuda = torch.cuda.is_available()
    if config.bf16 and not cuda:
        raise TrainError(
            "--bf16 needs a CUDA GPU and this machine has none; train without --bf16 (float32)"
        )
    if config.load_in_4bit:
        if config.method != "lora":
            raise TrainError(
                "--load-in-4bit trains a LoRA adapter on a 4-bit base (QLoRA): drop --full"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainError("--load-in-4bit needs bitsandbytes: pip install bitsandbytes")
        if not cuda:
            raise TrainError("--load-in-4bit needs a CUDA GPU and this machine has none")
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(config.report_to)
    if package and importlib.util.find_spec(package) is None:
        raise TrainError(f"--report-to {config.report_to} needs {package}: pip install {package}")
    if config.packing and config.objective == "dpo":
        raise TrainError("--packing is for --method sft; DPO batches chosen and rejected pairs")
    return "cuda" if cuda else "cpu"


def planned_steps(config: TrainConfig, examples: int) -> int:
    if config.max_steps:
        return config.max_steps
    per_epoch = math.ceil(examples / (config.batch_size * config.grad_accum))
    return max(1, math.ceil(per_epoch * config.epochs))


def encode_splits(tokenizer: Any, data: TrainingData, config: TrainConfig) -> dict[str, Encoded]:
    """Every non-empty split that training uses encoded (train, and validation for the eval
    loss; a test split is left for `eval`); a run whose training rows were all dropped stops
    here."""
    encoded = {
        split: encode_conversations(tokenizer, rows, config.max_seq_len, config.overlong)
        for split, rows in data.splits.items()
        if rows and split in TRAINING_SPLITS
    }
    if not encoded["train"].examples:
        raise TrainError(
            f"{data.source}: all {encoded['train'].dropped} training rows were dropped: their "
            f"answers start after --max-seq-len {config.max_seq_len} tokens; raise the limit"
        )
    return encoded


def example_counts(encoded: dict[str, Encoded]) -> dict[str, int]:
    return {
        **{f"{split}_examples": len(enc.examples) for split, enc in encoded.items()},
        "truncated": sum(enc.truncated for enc in encoded.values()),
        "dropped": sum(enc.dropped for enc in encoded.values()),
        "train_tokens": encoded["train"].tokens,
        "train_target_tokens": encoded["train"].target_tokens,
    }


def training_splits(data: TrainingData) -> dict[str, list[Any]]:
    return {split: rows for split, rows in data.splits.items() if rows and split in TRAINING_SPLITS}


def plan_training(config: TrainConfig) -> TrainingPlan:
    """Check everything (output folder, device, data, model) and load it; writes nothing."""
    out_dir = Path(config.out_dir).resolve()
    resume_from = check_out_dir(out_dir, config.resume)
    device = check_device(config)
    data = load_training_data(config.data_dir, config.objective)
    resumed = None
    if resume_from is not None:
        note = check_resumable(out_dir, data.fingerprint)
        resumed = {
            "checkpoint": str(resume_from),
            "step": checkpoint_step(resume_from),
            "training_run_id": note.get("training_run_id"),
        }
    template = read_chat_template(config.chat_template) if config.chat_template else None
    base = load_student(config, template)
    pad_id = ensure_padding(base.tokenizer)
    encoded = {} if config.objective == "dpo" else encode_splits(base.tokenizer, data, config)
    pairs: dict[str, list[Any]] = {}
    if config.objective == "dpo":
        pairs, counts = check_preference_lengths(base.tokenizer, training_splits(data), config)
    else:
        counts = example_counts(encoded)
    # Seeded before the adapter exists: its initial weights are random, so without this two
    # runs with the same --seed start from different adapters.
    set_seed(config.seed)
    model = prepare_model(base, config)
    train_rows = len(pairs["train"]) if pairs else len(encoded["train"].examples)
    total_steps = planned_steps(config, train_rows)
    logging_steps = config.logging_steps or (1 if total_steps <= 50 else 10)
    run_config = {
        **config.record(),
        "learning_rate": config.lr,
        "logging_steps": logging_steps,
        "planned_steps": total_steps,
        "device": device,
        "attn_implementation": base.model.config._attn_implementation,
        "resumed_from": resumed,
    }
    return TrainingPlan(
        config=config,
        out_dir=out_dir,
        device=device,
        data=data,
        base=base,
        pad_id=pad_id,
        encoded=encoded,
        model=model,
        total_steps=total_steps,
        logging_steps=logging_steps,
        counts=counts,
        run_config=run_config,
        resume_from=resume_from,
        resumed=resumed,
        pairs=pairs,
    )
