"""The student's starting point: the base model and tokenizer (bundled, a local folder or a hub
id), the hash of its weights for the record, and the LoRA adapter wrapped around it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medstore.training.config import BUNDLED, TrainConfig, TrainError
from medstore.warehouse.hashing import content_hash

# LoRA targets per architecture: attention projections, plus the MLP with targets="all".
ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
LLAMA_LIKE = {"llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "olmo2"}


@dataclass
class LoadedModel:
    """A base model with its tokenizer, the name it is recorded under and its weights' hash."""

    model: Any
    tokenizer: Any
    name: str
    weights_hash: str | None


def load_base_model(spec: str, *, dtype: Any = None, device: str | None = None) -> LoadedModel:
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
        return LoadedModel(model, copy.deepcopy(tokenizer), f"{BUNDLED}:{MODEL_NAME}", weights_hash)
    from transformers import AutoTokenizer

    from medstore.llm.local import load_pretrained

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = load_pretrained(spec, dtype=dtype or torch.float32)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"cannot load base model {spec!r}: {first_line}") from exc
    if device:
        model = model.to(device)
    return LoadedModel(model, tokenizer, spec, weights_hash_of(spec, model))


def load_student(config: TrainConfig, chat_template: str | None = None) -> LoadedModel:
    """The base model to train, loaded once (not the teacher's shared copy) with the attention
    kernel asked for, in 4-bit for QLoRA, and with the chat template of ``--chat-template``."""
    from transformers import AutoTokenizer

    from medstore.llm.local import load_pretrained

    kwargs: dict[str, Any] = {
        "dtype": torch.bfloat16 if config.bf16 and config.method == "lora" else torch.float32
    }
    if config.attn_implementation != "auto":
        kwargs["attn_implementation"] = config.attn_implementation
    if config.load_in_4bit:
        kwargs.update(quantization_config=four_bit_config(), device_map={"": local_rank()})
    source, name, weights_hash = config.base_model, config.base_model, None
    try:
        if config.base_model == BUNDLED:
            from medstore.llm import BackendUnavailable
            from medstore.llm.local import MODEL_NAME, bundled_folder

            try:
                folder, weights_hash = bundled_folder()
            except BackendUnavailable as exc:
                raise TrainError(str(exc)) from exc
            source, name = str(folder), f"{BUNDLED}:{MODEL_NAME}"
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = load_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"cannot load base model {config.base_model!r}: {first_line}") from exc
    if chat_template:
        tokenizer.chat_template = chat_template
    if weights_hash is None:
        weights_hash = weights_hash_of(config.base_model, model)
    return LoadedModel(model, tokenizer, name, weights_hash)


def read_chat_template(path: str) -> str:
    """A Jinja chat template from a file (a .jinja file, or a tokenizer_config-style .json)."""
    file = Path(path)
    if not file.is_file():
        raise TrainError(f"--chat-template {path}: no such file")
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        import json

        try:
            text = json.loads(text)["chat_template"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TrainError(f"--chat-template {path}: no `chat_template` key in it") from exc
    if "{%" not in text and "{{" not in text:
        raise TrainError(f"--chat-template {path}: not a Jinja template")
    return text


def local_rank() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def four_bit_config() -> Any:
    """QLoRA's NF4 with double quantisation, computing in bfloat16."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


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


def prepare_model(base: LoadedModel, config: TrainConfig) -> Any:
    """The model to train: the base itself (full fine-tuning) or a LoRA adapter around it."""
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
    if config.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        base.model = prepare_model_for_kbit_training(
            base.model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    elif config.gradient_checkpointing:
        base.model.enable_input_require_grads()
    return get_peft_model(base.model, lora_config)
