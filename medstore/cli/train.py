"""`train`: fine-tune a student on an export, recorded as events in the warehouse."""

from __future__ import annotations

import os

import click

from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl

BASE_MODEL_HELP = (
    "bundled (the embedded SmolLM2-135M-Instruct, offline), a hub id such as "
    "Qwen/Qwen2.5-0.5B-Instruct, or a local folder."
)


@click.command(context_settings=CONTEXT)
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(),
    help="An export folder (any format) or a .jsonl file with a `messages` column.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for the result.")
@click.option("--base-model", default="bundled", show_default=True, help=BASE_MODEL_HELP)
@click.option(
    "--lora/--full",
    "lora",
    default=True,
    show_default=True,
    help="LoRA adapter (default) or full fine-tuning.",
)
@click.option(
    "--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), help="[default: 2e-4 LoRA, 2e-5 full]"
)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-seq-len", type=click.IntRange(min=8), default=1024, show_default=True)
@click.option(
    "--overlong",
    type=click.Choice(["truncate", "refuse"]),
    default="truncate",
    show_default=True,
    help="Conversations over --max-seq-len: cut them (counted; dropped if no answer token is "
    "left) or refuse to train.",
)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N optimiser steps.")
@click.option("--bf16", is_flag=True, help="bfloat16 mixed precision (needs a CUDA GPU).")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for memory.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--logging-steps", type=click.IntRange(min=1), help="[default: 1 up to 50 steps, else 10]"
)
@click.option("--eval-steps", type=click.IntRange(min=1), help="Also evaluate every N steps.")
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--lora-targets",
    type=click.Choice(["attention", "all"]),
    default="attention",
    show_default=True,
    help="attention: q/k/v/o projections; all: also the MLP (all linear layers elsewhere).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@db_option
@json_option
def train(
    data_dir: str,
    out_dir: str,
    base_model: str,
    lora: bool,
    epochs: float,
    lr: float | None,
    batch_size: int,
    grad_accum: int,
    max_seq_len: int,
    overlong: str,
    max_steps: int | None,
    bf16: bool,
    gradient_checkpointing: bool,
    seed: int,
    logging_steps: int | None,
    eval_steps: int | None,
    lora_r: int,
    lora_alpha: int,
    lora_targets: str,
    no_progress: bool,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Fine-tune a student on an export; the run is recorded as events in the warehouse.

    Uses the base model's chat template with the loss on assistant tokens only, and saves the
    adapter (or model), the tokenizer and training_manifest.json, which links to the export
    manifest and through it to every sample and teacher call behind the data.

    \b
    Example:
        python cli.py export --recipe consult --format arrow --out exports/consult
        python cli.py train --data exports/consult --out runs/consult-lora --max-steps 50
        python cli.py train --data exports/medec-cot --out runs/qwen3 \\
            --base-model Qwen/Qwen3-4B --bf16 --gradient-checkpointing --epochs 2
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from medstore.training.train import TrainConfig, TrainError
    from medstore.training.train import train as run_training

    config = TrainConfig(
        data_dir=data_dir,
        out_dir=out_dir,
        base_model=base_model,
        method="lora" if lora else "full",
        epochs=epochs,
        learning_rate=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_seq_len=max_seq_len,
        max_steps=max_steps,
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
        seed=seed,
        overlong=overlong,
        logging_steps=logging_steps,
        eval_steps=eval_steps,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_targets=lora_targets,
        progress=not no_progress,
    )
    with open_warehouse(db_path) as warehouse:
        try:
            result = run_training(warehouse, config)
        except TrainError as exc:
            raise click.ClickException(str(exc)) from exc
    summary = {
        "training_run_id": result.training_run_id,
        "out_dir": str(result.out_dir),
        "metrics": result.metrics,
        "examples": result.encoded,
    }
    if as_json:
        echo_json(summary)
        return
    metrics = result.metrics
    counts = result.encoded
    eval_text = f", eval loss {metrics['eval_loss']:.4f}" if "eval_loss" in metrics else ""
    click.echo(
        f"training {result.training_run_id}: {int(metrics['steps'])} steps, train loss "
        f"{metrics['train_loss']:.4f}{eval_text}, {metrics['tokens_per_s']:.0f} tokens/s"
    )
    if counts["truncated"] or counts["dropped"]:
        click.echo(
            f"note: {counts['truncated']} conversation(s) cut at {max_seq_len} tokens, "
            f"{counts['dropped']} dropped (no answer token left)"
        )
    click.echo(f"saved: {result.out_dir} (see training_manifest.json)")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(train)
