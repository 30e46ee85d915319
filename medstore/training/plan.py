"""A training run checked and prepared before anything is written: output folder, device, data,
base model, encoded conversations, the model to train and the number of steps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from medstore.training.artefacts import check_out_dir
from medstore.training.config import TrainConfig, TrainError
from medstore.training.data import TrainingData, load_training_data
from medstore.training.encoding import Encoded, encode_conversations
from medstore.training.models import LoadedModel, ensure_padding, load_base_model, prepare_model

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

    @property
    def has_validation(self) -> bool:
        validation = self.encoded.get("validation")
        return bool(validation and validation.examples)


def check_device(config: TrainConfig) -> str:
    if config.bf16 and not torch.cuda.is_available():
        raise TrainError(
            "--bf16 needs a CUDA GPU and this machine has none; train without --bf16 (float32)"
        )
    return "cuda" if torch.cuda.is_available() else "cpu"


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


def plan_training(config: TrainConfig) -> TrainingPlan:
    """Check everything (output folder, device, data, model) and load it; writes nothing."""
    out_dir = Path(config.out_dir).resolve()
    check_out_dir(out_dir)
    device = check_device(config)
    data = load_training_data(config.data_dir)
    dtype = torch.bfloat16 if config.bf16 and config.method == "lora" else None
    base = load_base_model(config.base_model, dtype=dtype)
    pad_id = ensure_padding(base.tokenizer)
    encoded = encode_splits(base.tokenizer, data, config)
    # Seeded before the adapter exists: its initial weights are random, so without this two
    # runs with the same --seed start from different adapters.
    set_seed(config.seed)
    model = prepare_model(base, config)
    total_steps = planned_steps(config, len(encoded["train"].examples))
    logging_steps = config.logging_steps or (1 if total_steps <= 50 else 10)
    run_config = {
        **config.record(),
        "learning_rate": config.lr,
        "logging_steps": logging_steps,
        "planned_steps": total_steps,
        "device": device,
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
        counts=example_counts(encoded),
        run_config=run_config,
    )
