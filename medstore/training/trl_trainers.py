"""The TRL trainers a plan runs: ``SFTTrainer`` on the encoded conversations (input ids with
their labels: the loss on the answer only), ``DPOTrainer`` on preference pairs, both with the
peft adapter the plan made, checkpoints in ``OUT/checkpoints`` and the chosen ``--report-to``.

Batches are padded to their longest row (never to ``--max-seq-len``); ``--packing`` packs rows
best-fit into ``--max-seq-len`` sequences without padding, attention kept within each row.
"""

from __future__ import annotations

import os
from typing import Any

from transformers.trainer_callback import PrinterCallback, ProgressCallback

from medstore.training.checkpoints import checkpoints_dir
from medstore.training.lm_head import fit_fused_lm_head_to_cpu
from medstore.training.plan import TrainingPlan


def common_arguments(plan: TrainingPlan) -> dict[str, Any]:
    """What SFTConfig and DPOConfig share: the optimiser, steps, logging and checkpoints."""
    config, device = plan.config, plan.device
    return {
        "output_dir": str(checkpoints_dir(plan.out_dir)),
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.lr,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "warmup_steps": config.warmup_steps,
        "bf16": config.bf16 or config.load_in_4bit,
        "use_cpu": device == "cpu",
        "gradient_checkpointing": config.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False}
        if config.gradient_checkpointing
        else None,
        "logging_steps": plan.logging_steps,
        "eval_strategy": "steps" if plan.has_validation and config.eval_steps else "no",
        "eval_steps": config.eval_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.keep_checkpoints,
        "report_to": config.report_to,
        "disable_tqdm": True,
        "seed": config.seed,
        "data_seed": config.seed,
        "dataloader_pin_memory": device == "cuda",
    }


def report_to_folder(plan: TrainingPlan) -> None:
    """TensorBoard writes into OUT/runs (unless $TENSORBOARD_LOGGING_DIR says otherwise)."""
    if plan.config.report_to == "tensorboard":
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(plan.out_dir / "runs"))


def sft_datasets(plan: TrainingPlan) -> tuple[Any, Any]:
    from datasets import Dataset

    train = Dataset.from_list(plan.encoded["train"].examples)
    validation = plan.encoded.get("validation")
    evaluation = Dataset.from_list(validation.examples) if plan.has_validation else None
    return train, evaluation


def build_sft_trainer(plan: TrainingPlan) -> Any:
    """TRL's SFTTrainer on rows medstore encoded (already cut to --max-seq-len and counted)."""
    from trl import SFTConfig, SFTTrainer

    config = plan.config
    packing = config.packing
    if plan.device == "cpu":
        fit_fused_lm_head_to_cpu()  # TRL's tiles are sized for a GPU: see lm_head.py
    arguments = SFTConfig(
        **common_arguments(plan),
        # The rows are already cut to --max-seq-len (and counted); packing fills sequences of it.
        max_length=config.max_seq_len if packing else None,
        packing=packing,
        packing_strategy="bfd",
        # Rows of similar length share a batch, so little compute goes to padding.
        train_sampling_strategy="random" if packing else "group_by_length",
        dataset_num_proc=None,
    )
    train, evaluation = sft_datasets(plan)
    report_to_folder(plan)
    trainer = counting(SFTTrainer)(
        model=plan.model,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=plan.base.tokenizer,
    )
    return quiet(trainer)


def build_dpo_trainer(plan: TrainingPlan) -> Any:
    """TRL's DPOTrainer on the preference pairs (over-long ones counted by the plan); the
    reference model is the base without the adapter."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    config = plan.config
    arguments = DPOConfig(
        **common_arguments(plan), beta=config.dpo_beta, max_length=config.max_seq_len
    )
    splits = plan.pairs
    report_to_folder(plan)
    trainer = counting(DPOTrainer)(
        model=plan.model,
        ref_model=None,
        args=arguments,
        train_dataset=Dataset.from_list(splits["train"]),
        eval_dataset=Dataset.from_list(splits["validation"]) if plan.has_validation else None,
        processing_class=plan.base.tokenizer,
    )
    return quiet(trainer)


def quiet(trainer: Any) -> Any:
    """medstore shows its own progress bar and logs; the Trainer's printing goes."""
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    return trainer


def counting(trainer_class: type) -> type:
    """The trainer class, counting the real (non-padding) tokens its training steps consume."""

    class Counting(trainer_class):  # type: ignore[misc, valid-type]
        tokens_trained = 0

        def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kw: Any):
            self.tokens_trained += batch_tokens(inputs)
            return super().training_step(model, inputs, *args, **kw)

    Counting.__name__ = f"Counting{trainer_class.__name__}"
    return Counting


def batch_tokens(inputs: dict[str, Any]) -> int:
    """Tokens that are not padding: the attention mask's ones, or every token of a
    padding-free (flattened) batch."""
    if "attention_mask" in inputs:
        return int(inputs["attention_mask"].sum())
    return int(inputs["input_ids"].numel())


def build_trainer(plan: TrainingPlan) -> Any:
    from transformers import set_seed

    set_seed(plan.config.seed)
    if plan.config.objective == "dpo":
        return build_dpo_trainer(plan)
    return build_sft_trainer(plan)
