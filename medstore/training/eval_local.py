"""Local models on an eval task: a `train` output folder (adapter or whole model), a hub id, a
model folder or ``bundled``, each with the base model it was trained from. Decoding is greedy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medstore.training.eval_tasks import EvalError, Example

# A model to score: its role (base | trained), its name, and what generates its answers.
Run = tuple[str, str, Callable[[], list[str]]]


@dataclass
class Candidate:
    """What ``--model`` names: the model to score, and the base it was trained from, if known."""

    spec: str
    base_spec: str | None
    adapter_dir: Path | None
    training_run_id: str | None


def resolve_candidate(spec: str) -> Candidate:
    folder = Path(spec)
    if not folder.is_dir():
        return Candidate(spec, None, None, None)
    manifest: dict[str, Any] = {}
    if (folder / "training_manifest.json").is_file():
        manifest = json.loads((folder / "training_manifest.json").read_text(encoding="utf-8"))
    base_spec = (manifest.get("base_model") or {}).get("spec")
    run_id = manifest.get("training_run_id")
    if (folder / "adapter_config.json").is_file():
        if base_spec is None:
            adapter = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
            base_spec = adapter.get("base_model_name_or_path")
        if not base_spec:
            raise EvalError(f"{folder}: an adapter whose base model is not recorded")
        return Candidate(str(folder.resolve()), base_spec, folder, run_id)
    if not (folder / "config.json").is_file():
        raise EvalError(f"{folder}: neither a trained adapter nor a model folder")
    return Candidate(str(folder.resolve()), base_spec, None, run_id)


def generate(
    model: Any, tokenizer: Any, examples: list[Example], max_new_tokens: int, batch_size: int
) -> list[str]:
    """Greedy answers, batched with left padding."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(e.messages, tokenize=False, add_generation_prompt=True)
            for e in batch
        ]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        outputs += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return outputs


def bound(base: Any, examples: list[Example], max_new_tokens: int, batch_size: int):
    model = base.model.eval()
    return lambda: generate(model, base.tokenizer, examples, max_new_tokens, batch_size)


def adapter_runs(
    candidate: Candidate,
    examples: list[Example],
    max_new_tokens: int,
    batch_size: int,
    with_base: bool,
) -> list[Run]:
    """An adapter loads on its base once; the base's answers come with the adapter disabled."""
    from peft import PeftModel

    from medstore.training.models import load_base_model

    base = load_base_model(candidate.base_spec)
    model = PeftModel.from_pretrained(base.model, str(candidate.adapter_dir)).eval()

    def run_base() -> list[str]:
        with model.disable_adapter():
            return generate(model, base.tokenizer, examples, max_new_tokens, batch_size)

    runs: list[Run] = [("base", candidate.base_spec, run_base)] if with_base else []
    runs.append(
        (
            "trained",
            candidate.spec,
            lambda: generate(model, base.tokenizer, examples, max_new_tokens, batch_size),
        )
    )
    return runs


def model_runs(
    candidate: Candidate,
    examples: list[Example],
    max_new_tokens: int,
    batch_size: int,
    with_base: bool,
) -> list[Run]:
    """The models to score, base first, each loaded now; a model that cannot load is an
    EvalError before any answer is generated."""
    from medstore.training.config import TrainError
    from medstore.training.models import load_base_model

    try:
        if candidate.adapter_dir is not None:
            return adapter_runs(candidate, examples, max_new_tokens, batch_size, with_base)
        runs: list[Run] = []
        if with_base and candidate.base_spec:
            base = load_base_model(candidate.base_spec)
            runs.append(
                ("base", candidate.base_spec, bound(base, examples, max_new_tokens, batch_size))
            )
        loaded = load_base_model(candidate.spec)
        role = "trained" if candidate.training_run_id else "base"
        runs.append((role, candidate.spec, bound(loaded, examples, max_new_tokens, batch_size)))
        return runs
    except TrainError as exc:
        raise EvalError(str(exc)) from exc
