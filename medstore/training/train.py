"""Fine-tune a student on an export: transformers + peft, the base model's chat template, loss on
assistant tokens only, LoRA by default. The run is recorded as events (config, data fingerprint,
loss per logging step, eval loss, artefacts) and ``training_manifest.json`` links the adapter
back to the export manifest, and through it to every sample, prompt and teacher output.

Over-long conversations: with ``overlong="truncate"`` (the default) a conversation longer than
``max_seq_len`` tokens is cut at the limit and counted; one left with no assistant token is
dropped and counted. With ``overlong="refuse"`` any over-long conversation stops the run before
training starts.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from medstore.resources import code_version
from medstore.warehouse.events import (
    Envelope,
    TrainingFinished,
    TrainingLogged,
    TrainingStarted,
    make_record,
)
from medstore.warehouse.hashing import canonical_json, content_hash, uuid7
from medstore.warehouse.store import Warehouse

log = logging.getLogger(__name__)

BUNDLED = "bundled"
TRAINING_MANIFEST = "training_manifest.json"
IGNORE_INDEX = -100
# LoRA targets per architecture: attention projections, plus the MLP with targets="all".
ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
LLAMA_LIKE = {"llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "olmo2"}


class TrainError(Exception):
    """Training cannot start or go on (no data, no messages, no GPU for bf16): one line."""


@dataclass
class TrainConfig:
    data_dir: str
    out_dir: str
    base_model: str = BUNDLED
    method: str = "lora"  # lora | full
    epochs: float = 1.0
    learning_rate: float | None = None  # default: 2e-4 for LoRA, 2e-5 for full fine-tuning
    batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = 1024
    max_steps: int | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    seed: int = 42
    overlong: str = "truncate"  # truncate | refuse
    logging_steps: int | None = None  # default: every step up to 50 steps, else every 10
    eval_steps: int | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "attention"  # attention | all
    warmup_steps: int = 0
    progress: bool = True

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5


# Data --------------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """The conversations of an export (or any `datasets` / JSONL folder) by split."""

    source: str
    format: str
    splits: dict[str, list[list[dict[str, str]]]]
    manifest: dict[str, Any] | None = None
    manifest_path: str | None = None
    manifest_hash: str | None = None

    @property
    def fingerprint(self) -> str:
        return content_hash(canonical_json(self.splits))


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".jsonl":
            return "jsonl-file"
        raise TrainError(f"{path}: expected an export folder or a .jsonl file")
    manifest = path / "manifest.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text(encoding="utf-8"))["format"]
        except (ValueError, KeyError) as exc:
            raise TrainError(f"{manifest}: not a medstore export manifest") from exc
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "arrow"
    if (path / "train.jsonl").is_file():
        return "jsonl"
    if (path / "train.parquet").is_file():
        return "parquet"
    raise TrainError(
        f"{path}: no export found (expected manifest.json, a datasets folder, train.jsonl or "
        "train.parquet); make one with `python cli.py export`"
    )


def read_messages(path: Path, fmt: str) -> dict[str, list[Any]]:
    """The ``messages`` column of every split; a missing column is a one-line error."""
    missing = TrainError(
        f"{path}: the data has no `messages` column; export a recipe with a chat form "
        "(system / user / assistant messages)"
    )
    if fmt in ("jsonl", "jsonl-file"):
        files = (
            {"train": path}
            if fmt == "jsonl-file"
            else {split: path / f"{split}.jsonl" for split in ("train", "validation")}
        )
        splits: dict[str, list[Any]] = {}
        for split, file in files.items():
            if not file.is_file():
                continue
            rows = []
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainError(f"{file}: line {number} is not JSON: {exc.msg}") from exc
                if "messages" not in row:
                    raise missing
                rows.append(row["messages"])
            splits[split] = rows
        return splits
    if fmt == "parquet":
        import pyarrow.parquet as pq

        splits = {}
        for split in ("train", "validation"):
            file = path / f"{split}.parquet"
            if file.is_file():
                if "messages" not in pq.read_schema(file).names:
                    raise missing
                splits[split] = pq.read_table(file, columns=["messages"]).column(0).to_pylist()
        return splits
    if fmt == "arrow":
        from datasets import Dataset, load_from_disk

        loaded = load_from_disk(str(path))
        parts = {"train": loaded} if isinstance(loaded, Dataset) else dict(loaded)
        if any("messages" not in part.column_names for part in parts.values()):
            raise missing
        return {name: part["messages"] for name, part in parts.items()}
    raise TrainError(f"{path}: unknown export format {fmt!r}")


def check_conversation(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise TrainError(f"{where}: `messages` is not a list of chat turns")
    for turn in messages:
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn):
            raise TrainError(f"{where}: a chat turn lacks `role` or `content`")
    if not any(turn["role"] == "assistant" for turn in messages):
        raise TrainError(f"{where}: no assistant turn to learn from")
    return [{"role": turn["role"], "content": turn["content"] or ""} for turn in messages]


def load_training_data(data_dir: str | Path) -> TrainingData:
    path = Path(data_dir)
    if not path.exists():
        raise TrainError(f"{path}: no such export folder")
    fmt = detect_format(path)
    raw = read_messages(path, fmt)
    splits = {
        split: [
            check_conversation(messages, f"{path} [{split} row {index}]")
            for index, messages in enumerate(rows)
        ]
        for split, rows in raw.items()
    }
    if not splits.get("train"):
        raise TrainError(f"{path}: the dataset is empty (no training rows)")
    data = TrainingData(source=str(path.resolve()), format=fmt, splits=splits)
    manifest = path / "manifest.json" if path.is_dir() else None
    if manifest is not None and manifest.is_file():
        text = manifest.read_text(encoding="utf-8")
        data.manifest = json.loads(text)
        data.manifest_path = str(manifest.resolve())
        data.manifest_hash = content_hash(text)
    return data


# Tokenising --------------------------------------------------------------------------------------
@dataclass
class Encoded:
    examples: list[dict[str, list[int]]]
    truncated: int = 0
    dropped: int = 0
    tokens: int = 0
    target_tokens: int = 0


def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple]]:
    """The conversation as the model sees it, and the character spans of the assistant turns
    (their text and end-of-turn marker): the only tokens the loss is computed on."""
    full = render(tokenizer, messages)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = render(tokenizer, messages[: index + 1]).rstrip()
        if full.startswith(before) and full.startswith(through) and len(through) > len(before):
            spans.append((len(before), len(through)))
    if not spans:  # a template that rewrites earlier turns: learn the last answer only
        before = render(tokenizer, messages[:-1], generation_prompt=True)
        if messages[-1]["role"] != "assistant" or not full.startswith(before):
            raise TrainError(
                "the base model's chat template renders conversations inconsistently; "
                "cannot tell the assistant tokens apart"
            )
        spans.append((len(before), len(full.rstrip())))
    return full, spans


def encode_conversations(
    tokenizer: Any, conversations: list[list[dict[str, str]]], max_seq_len: int, overlong: str
) -> Encoded:
    """Token ids with labels (-100 outside assistant turns), cut to ``max_seq_len``."""
    if not getattr(tokenizer, "is_fast", False):
        raise TrainError("the base model needs a fast tokenizer (character offsets for masking)")
    texts, all_spans = [], []
    for messages in conversations:
        text, spans = assistant_spans(tokenizer, messages)
        texts.append(text)
        all_spans.append(spans)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    result = Encoded(examples=[])
    too_long = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_seq_len]
    if too_long and overlong == "refuse":
        longest = max(len(encoded["input_ids"][i]) for i in too_long)
        raise TrainError(
            f"{len(too_long)} conversation(s) exceed --max-seq-len {max_seq_len} tokens (longest "
            f"{longest}); raise the limit or use --overlong truncate"
        )
    for ids, offsets, spans in zip(
        encoded["input_ids"], encoded["offset_mapping"], all_spans, strict=True
    ):
        labels = [
            token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
            for token, (begin, _) in zip(ids, offsets, strict=True)
        ]
        if len(ids) > max_seq_len:
            result.truncated += 1
            ids, labels = ids[:max_seq_len], labels[:max_seq_len]
        targets = sum(label != IGNORE_INDEX for label in labels)
        if not targets:
            result.dropped += 1
            continue
        result.examples.append({"input_ids": list(ids), "labels": labels})
        result.tokens += len(ids)
        result.target_tokens += targets
    return result


class PaddingCollator:
    """Pads a batch to its longest row (not to max_seq_len): no compute spent on padding."""

    def __init__(self, pad_token_id: int, multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.multiple_of = multiple_of

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(row["input_ids"]) for row in batch)
        if self.multiple_of:
            width = math.ceil(width / self.multiple_of) * self.multiple_of
        input_ids, labels, attention = [], [], []
        for row in batch:
            pad = width - len(row["input_ids"])
            input_ids.append(row["input_ids"] + [self.pad_token_id] * pad)
            labels.append(row["labels"] + [IGNORE_INDEX] * pad)
            attention.append([1] * len(row["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(attention),
        }


# Models ------------------------------------------------------------------------------------------
@dataclass
class BaseModel:
    model: Any
    tokenizer: Any
    name: str
    weights_hash: str | None


def load_base_model(spec: str, *, dtype: Any = None, device: str | None = None) -> BaseModel:
    """``bundled`` (the embedded SmolLM2-135M-Instruct), a local folder or a hub id.

    The bundled model comes from the local teacher's memoised loader; it is copied, so adapters
    injected here never reach the teacher that shares the process.
    """
    if spec == BUNDLED:
        from medstore.llm import BackendUnavailable
        from medstore.llm.local import MODEL_NAME, load_local_model

        try:
            model, tokenizer, weights_hash = load_local_model("cpu")
        except BackendUnavailable as exc:
            raise TrainError(str(exc)) from exc
        model = copy.deepcopy(model)
        if dtype is not None:
            model = model.to(dtype)
        if device:
            model = model.to(device)
        return BaseModel(model, copy.deepcopy(tokenizer), f"{BUNDLED}:{MODEL_NAME}", weights_hash)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype or torch.float32)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"cannot load base model {spec!r}: {first_line}") from exc
    if device:
        model = model.to(device)
    return BaseModel(model, tokenizer, spec, weights_hash_of(spec, model))


def weights_hash_of(spec: str, model: Any) -> str | None:
    """Content hash of a local folder's weight files (cached by size and mtime), else the hub
    commit the weights came from."""
    folder = Path(spec)
    if folder.is_dir():
        from medstore.llm.local_cache import file_hash

        files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
        if files:
            return content_hash("\n".join(f"{f.name} {file_hash(f)}" for f in files))
    commit = getattr(model.config, "_commit_hash", None)
    return f"hub:{spec}@{commit}" if commit else None


def lora_target_modules(model_type: str, targets: str) -> list[str] | str | None:
    """Attention projections for llama-like models (q, k, v, o), plus the MLP with "all";
    other architectures: peft's own default, or every linear layer with "all"."""
    if model_type in LLAMA_LIKE:
        return ATTENTION_PROJECTIONS + (MLP_PROJECTIONS if targets == "all" else [])
    return "all-linear" if targets == "all" else None


def ensure_padding(tokenizer: Any) -> int:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer.pad_token_id


# Training ----------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    training_run_id: str
    out_dir: Path
    metrics: dict[str, float]
    manifest: dict[str, Any]
    encoded: dict[str, int] = field(default_factory=dict)


def check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / TRAINING_MANIFEST).exists():
        raise TrainError(f"{out_dir}: folder is not empty and holds no medstore training run")


def check_device(config: TrainConfig) -> str:
    if config.bf16 and not torch.cuda.is_available():
        raise TrainError(
            "--bf16 needs a CUDA GPU and this machine has none; train without --bf16 (float32)"
        )
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    out_dir = Path(config.out_dir).resolve()
    check_out_dir(out_dir)
    device = check_device(config)
    data = load_training_data(config.data_dir)
    lora = config.method == "lora"
    dtype = torch.bfloat16 if config.bf16 and lora else None
    base = load_base_model(config.base_model, dtype=dtype)
    pad_id = ensure_padding(base.tokenizer)
    encoded = {
        split: encode_conversations(base.tokenizer, rows, config.max_seq_len, config.overlong)
        for split, rows in data.splits.items()
        if rows
    }
    if not encoded["train"].examples:
        raise TrainError(
            f"{data.source}: all {encoded['train'].dropped} training rows were dropped: their "
            f"answers start after --max-seq-len {config.max_seq_len} tokens; raise the limit"
        )
    model = prepare_model(base, config)
    total_steps = planned_steps(config, len(encoded["train"].examples))
    logging_steps = config.logging_steps or (1 if total_steps <= 50 else 10)

    training_run_id = uuid7()
    export_id = data.manifest.get("export_id") if data.manifest else None
    counts = {
        **{f"{split}_examples": len(enc.examples) for split, enc in encoded.items()},
        "truncated": sum(enc.truncated for enc in encoded.values()),
        "dropped": sum(enc.dropped for enc in encoded.values()),
        "train_tokens": encoded["train"].tokens,
        "train_target_tokens": encoded["train"].target_tokens,
    }
    run_config = {
        **asdict(config),
        "learning_rate": config.lr,
        "logging_steps": logging_steps,
        "planned_steps": total_steps,
        "device": device,
    }
    record = event_writer(warehouse)
    [started] = record(
        [
            (
                TrainingStarted(
                    training_run_id=training_run_id,
                    base_model=base.name,
                    weights_hash=base.weights_hash,
                    method=config.method,
                    config=run_config,
                    data_dir=data.source,
                    data_fingerprint=data.fingerprint,
                    export_id=export_id,
                    export_manifest_hash=data.manifest_hash,
                    examples=counts,
                    code_version=code_version(),
                ),
                Envelope(recipe=(data.manifest or {}).get("recipe", {}).get("name")),
            )
        ]
    )
    envelope = Envelope(
        recipe=(data.manifest or {}).get("recipe", {}).get("name"),
        parent_event_id=started.event_id,
    )
    trainer = build_trainer(
        model, base.tokenizer, encoded, config, device, pad_id, logging_steps, total_steps
    )
    trainer.add_callback(EventLogger(record, training_run_id, envelope))
    if config.progress:
        trainer.add_callback(LossProgress(total_steps))
    status, message = "failed", None
    try:
        started_at = time.perf_counter()
        outcome = trainer.train()
        runtime = time.perf_counter() - started_at
        metrics = {
            "train_loss": float(outcome.training_loss),
            "steps": float(trainer.state.global_step),
            "epochs": float(trainer.state.epoch or 0.0),
            "runtime_s": round(runtime, 3),
            "tokens_trained": float(trainer.tokens_trained),
            "tokens_per_s": round(trainer.tokens_trained / runtime, 2) if runtime else 0.0,
        }
        if encoded.get("validation") and encoded["validation"].examples:
            metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
        manifest = (save_artefacts if is_main_process() else no_artefacts)(
            trainer.model,
            base,
            config,
            data,
            out_dir,
            training_run_id,
            started.event_id,
            run_config,
            counts,
            metrics,
        )
        status = "completed"
    except KeyboardInterrupt:
        status, message = "interrupted", "stopped by the user"
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        finished = TrainingFinished(
            training_run_id=training_run_id,
            status=status,
            out_dir=str(out_dir) if status == "completed" else None,
            artefacts=manifest["artefacts"] if status == "completed" else {},
            metrics=metrics if status == "completed" else {},
            training_manifest_hash=manifest["manifest_hash"] if status == "completed" else None,
            message=message,
        )
        record([(finished, envelope)])
    return TrainResult(training_run_id, out_dir, metrics, manifest, counts)


def planned_steps(config: TrainConfig, examples: int) -> int:
    if config.max_steps:
        return config.max_steps
    per_epoch = math.ceil(examples / (config.batch_size * config.grad_accum))
    return max(1, math.ceil(per_epoch * config.epochs))


def prepare_model(base: BaseModel, config: TrainConfig) -> Any:
    if config.method == "full":
        return base.model
    from peft import LoraConfig, TaskType, get_peft_model

    lora_config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_modules(base.model.config.model_type, config.lora_targets),
    )
    if config.gradient_checkpointing:
        base.model.enable_input_require_grads()
    return get_peft_model(base.model, lora_config)


def build_trainer(
    model: Any,
    tokenizer: Any,
    encoded: dict[str, Encoded],
    config: TrainConfig,
    device: str,
    pad_id: int,
    logging_steps: int,
    total_steps: int,
) -> Any:
    set_seed(config.seed)
    validation = encoded.get("validation")
    has_eval = bool(validation and validation.examples)
    arguments = TrainingArguments(
        output_dir=str(Path(config.out_dir).resolve() / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_steps=config.warmup_steps,
        bf16=config.bf16,
        use_cpu=device == "cpu",
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False}
        if config.gradient_checkpointing
        else None,
        logging_steps=logging_steps,
        eval_strategy="steps" if has_eval and config.eval_steps else "no",
        eval_steps=config.eval_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
        data_seed=config.seed,
        # Rows of similar length share a batch, so little compute goes to padding.
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        dataloader_pin_memory=device == "cuda",
    )
    trainer = CountingTrainer(
        model=model,
        args=arguments,
        data_collator=PaddingCollator(pad_id, 8 if device == "cuda" else None),
        train_dataset=encoded["train"].examples,
        eval_dataset=validation.examples if has_eval else None,
        processing_class=tokenizer,
    )
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    return trainer


class CountingTrainer(Trainer):
    """A Trainer that counts the real (non-padding) tokens its training steps consume."""

    tokens_trained = 0

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> Any:
        self.tokens_trained += int(inputs["attention_mask"].sum())
        return super().training_step(model, inputs, num_items_in_batch)


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


def no_artefacts(*_: Any) -> dict[str, Any]:
    """What a non-main data-parallel process saves: nothing (rank 0 writes the folder)."""
    return {"artefacts": {}, "manifest_hash": None}


def save_artefacts(
    model: Any,
    base: BaseModel,
    config: TrainConfig,
    data: TrainingData,
    out_dir: Path,
    training_run_id: str,
    started_event_id: str,
    run_config: dict[str, Any],
    counts: dict[str, int],
    metrics: dict[str, float],
) -> dict[str, Any]:
    """The adapter (or whole model), the tokenizer and training_manifest.json, which links back
    to the export manifest. Returns the manifest with its own hash added."""
    import peft
    import transformers

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = out_dir / "checkpoints"  # the Trainer's output_dir; nothing is saved there
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    model.save_pretrained(str(out_dir))
    base.tokenizer.save_pretrained(str(out_dir))
    artefacts = {
        path.name: str(path)
        for path in sorted(out_dir.iterdir())
        if path.is_file() and path.name != TRAINING_MANIFEST
    }
    manifest = {
        "training_run_id": training_run_id,
        "training_started_event_id": started_event_id,
        "method": config.method,
        "base_model": {
            "spec": config.base_model,
            "name": base.name,
            "weights_hash": base.weights_hash,
            "architecture": base.model.config.model_type,
        },
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "targets": config.lora_targets,
        }
        if config.method == "lora"
        else None,
        "config": run_config,
        "data": {
            "dir": data.source,
            "format": data.format,
            "fingerprint": data.fingerprint,
            "export_id": (data.manifest or {}).get("export_id"),
            "export_manifest": data.manifest_path,
            "export_manifest_hash": data.manifest_hash,
            "recipe": (data.manifest or {}).get("recipe"),
            "counts": counts,
            "overlong": config.overlong,
            "max_seq_len": config.max_seq_len,
        },
        "metrics": metrics,
        "artefacts": artefacts,
        "code_version": code_version(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    (out_dir / TRAINING_MANIFEST).write_text(text, encoding="utf-8")
    artefacts[TRAINING_MANIFEST] = str(out_dir / TRAINING_MANIFEST)
    return {**manifest, "artefacts": artefacts, "manifest_hash": content_hash(text)}
