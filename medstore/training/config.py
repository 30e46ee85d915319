"""What a training run is asked to do, and the error it stops with when it cannot.

``TrainConfig`` is the one place train's defaults, bounds and help live: ``cli.py train`` builds
its flags from it (``medstore.cli.model_options``), and library callers construct it directly.
This module imports nothing heavy (no torch), so the CLI can read it at start-up.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BUNDLED = "bundled"
LAST_CHECKPOINT = "last"
NOT_ON_CLI = {"cli": False}
BASE_MODEL_HELP = (
    "bundled (the embedded SmolLM2-135M-Instruct, offline), a hub id such as "
    "Qwen/Qwen2.5-0.5B-Instruct, or a local folder."
)


class TrainError(Exception):
    """Training cannot start or go on (no data, no messages, no GPU for bf16): one line."""


class TrainConfig(BaseModel):
    """A fine-tuning run: data, base model, method and the optimiser's settings.

    The fields keep the order runs have always recorded them in (``record()``).
    """

    model_config = ConfigDict(extra="forbid")

    data_dir: str = Field(
        description="An export folder (any format) or a .jsonl file: `messages` (or "
        "`prompt`/`completion`) rows, or `prompt`/`chosen`/`rejected` for --method dpo.",
        json_schema_extra={"cli": {"flag": "--data", "metavar": "PATH"}},
    )
    out_dir: str = Field(
        description="Folder for the result.",
        json_schema_extra={"cli": {"flag": "--out", "metavar": "PATH"}},
    )
    base_model: str = Field(BUNDLED, description=BASE_MODEL_HELP)
    lora: bool = Field(
        True,
        description="LoRA adapter or full fine-tuning. [default: lora]",
        json_schema_extra={"cli": {"flag": "--lora/--full"}},
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the training rows.")
    learning_rate: float | None = Field(
        None,
        gt=0,
        description="Peak learning rate. [default: 2e-4 LoRA, 2e-5 full]",
        json_schema_extra={"cli": {"flag": "--lr"}},
    )
    batch_size: int = Field(4, ge=1, description="Rows per device and step.")
    grad_accum: int = Field(1, ge=1, description="Batches per optimiser step.")
    max_seq_len: int = Field(1024, ge=8, description="Longest conversation in tokens.")
    max_steps: int | None = Field(None, ge=1, description="Stop after N optimiser steps.")
    bf16: bool = Field(False, description="bfloat16 mixed precision (needs a CUDA GPU).")
    gradient_checkpointing: bool = Field(
        True,
        description="Recompute activations in the backward pass: less memory for some compute "
        "(TRL's default too).",
    )
    seed: int = Field(42, description="Seed of the data order and the trainer.")
    overlong: Literal["truncate", "refuse"] = Field(
        "truncate",
        description="Conversations over --max-seq-len: cut them (counted; dropped if no answer "
        "token is left) or refuse to train.",
    )
    logging_steps: int | None = Field(
        None, ge=1, description="Log every N steps. [default: 1 up to 50 steps, else 10]"
    )
    eval_steps: int | None = Field(None, ge=1, description="Also evaluate every N steps.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling (alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, json_schema_extra=NOT_ON_CLI)
    lora_targets: Literal["attention", "all"] = Field(
        "attention",
        description="attention: q/k/v/o projections; all: also the MLP (all linear layers "
        "elsewhere).",
    )
    warmup_steps: int = Field(0, ge=0, json_schema_extra=NOT_ON_CLI)
    progress: bool = Field(True, description="Show a progress bar (--no-progress: hide it).")
    objective: Literal["sft", "dpo"] = Field(
        "sft",
        description="sft: supervised fine-tuning on `messages` (or prompt/completion) rows, "
        "loss on the answer only; dpo: direct preference optimisation on prompt/chosen/rejected "
        "rows.",
        json_schema_extra={"cli": {"flag": "--method"}},
    )
    dpo_beta: float = Field(0.1, gt=0, description="DPO: strength of the pull to the base model.")
    packing: bool = Field(
        False,
        description="Pack several rows into each --max-seq-len sequence (best-fit, rows never cut "
        "apart; attention stays within each row).",
    )
    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        "none", description="Also send the training logs to TensorBoard (OUT/runs) or W&B."
    )
    save_steps: int = Field(
        100,
        ge=1,
        description="Save a resumable checkpoint every N steps (and at the last) in "
        "OUT/checkpoints; the last --keep-checkpoints are kept.",
    )
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept in OUT/checkpoints.")
    resume: str | None = Field(
        None,
        description="Go on from a checkpoint of an interrupted run into the same --out: the last "
        "one in OUT/checkpoints, or the CHECKPOINT folder given.",
        json_schema_extra={"cli": {"metavar": "[CHECKPOINT]", "flag_value": LAST_CHECKPOINT}},
    )
    load_in_4bit: bool = Field(
        False, description="QLoRA: the base model in 4-bit NF4 (needs bitsandbytes and a GPU)."
    )
    chat_template: str | None = Field(
        None,
        description="A Jinja chat-template file to use instead of the base model's own.",
        json_schema_extra={"cli": {"metavar": "FILE"}},
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto",
        description="Attention kernel; auto: sdpa where the model supports it, else eager.",
    )

    @property
    def method(self) -> str:
        """lora or full."""
        return "lora" if self.lora else "full"

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5

    def record(self) -> dict[str, Any]:
        """The settings as training events and manifests record them: ``method`` (lora | full)
        where the model has its ``lora`` flag, so records stay comparable across versions."""
        return {
            ("method" if name == "lora" else name): (self.method if name == "lora" else value)
            for name, value in self.model_dump().items()
        }
