"""`train`: fine-tune a student on an export, recorded as events in the warehouse. Its flags come
from ``TrainConfig``, where train's defaults, bounds and help live."""

from __future__ import annotations

import os
from typing import Any

import click

from medstore.cli.model_options import add_model_options, build_model, given, model_options
from medstore.cli.options import CONTEXT, db_option, echo_json, json_option, open_warehouse
from medstore.hookspecs import hookimpl
from medstore.training.config import TrainConfig, TrainError
from medstore.training.heap import prepare_cpu_heap

TRAIN_FIELDS = [option.name for option in model_options(TrainConfig)]


@click.command(context_settings=CONTEXT)
@add_model_options(TrainConfig)
@db_option
@json_option
def train(db_path: str | None, as_json: bool, **_: Any) -> None:
    """Fine-tune a student on an export with TRL; the run is recorded as events in the warehouse.

    SFT (TRL's SFTTrainer) uses the base model's chat template with the loss on the answer only;
    --method dpo (TRL's DPOTrainer) learns from prompt/chosen/rejected pairs. Both train a LoRA
    adapter by default, save resumable checkpoints in OUT/checkpoints (--resume goes on after a
    crash), and save the adapter (or model), the tokenizer and training_manifest.json, which
    links to the export manifest and through it to every sample and teacher call behind the data.

    \b
    Example:
        python cli.py export --recipe consult --format arrow --out exports/consult
        python cli.py train --data exports/consult --out runs/consult-lora --max-steps 50
        python cli.py train --data exports/consult --out runs/consult-lora --max-steps 50 --resume
        python cli.py train --data exports/medec-cot --out runs/qwen3 \\
            --base-model Qwen/Qwen3-4B --bf16 --epochs 2
        python cli.py train --data exports/medec-cot --out runs/qwen3-qlora \\
            --base-model Qwen/Qwen3-4B --load-in-4bit --packing --report-to tensorboard
        python cli.py train --method dpo --data exports/medec-dpo --out runs/dpo --max-steps 100
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    prepare_cpu_heap()  # before TRL is imported: see medstore/training/heap.py
    from medstore.training.trainer import train as run_training

    config = build_model(TrainConfig, given(click.get_current_context(), TRAIN_FIELDS))
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
    click.echo(render_summary(result, config))


def render_summary(result: Any, config: TrainConfig) -> str:
    """Steps, losses and throughput; a note when conversations were cut or dropped."""
    metrics, counts = result.metrics, result.encoded
    eval_text = f", eval loss {metrics['eval_loss']:.4f}" if "eval_loss" in metrics else ""
    first = int(metrics.get("first_step", 1))
    resumed = f" (resumed at step {first})" if first > 1 else ""
    lines = [
        f"training {result.training_run_id}: {int(metrics['steps'])} steps{resumed}, train loss "
        f"{metrics['train_loss']:.4f}{eval_text}, {metrics['tokens_per_s']:.0f} tokens/s"
    ]
    if counts["truncated"] or counts["dropped"]:
        lines.append(
            f"note: {counts['truncated']} conversation(s) cut at {config.max_seq_len} tokens, "
            f"{counts['dropped']} dropped (no answer token left)"
        )
    lines.append(f"saved: {result.out_dir} (see training_manifest.json)")
    return "\n".join(lines)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(train)
