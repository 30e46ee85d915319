"""What a training run leaves in its output folder: the adapter (or whole model), the tokenizer,
and ``training_manifest.json``, which links them back to the export manifest and through it to
every sample, prompt and teacher output behind the data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medstore.resources import code_version
from medstore.training.checkpoints import TRAINING_MANIFEST
from medstore.training.model_card import finish_adapter
from medstore.warehouse.hashing import content_hash

if TYPE_CHECKING:  # the plan module imports this one
    from medstore.training.plan import TrainingPlan


def no_artefacts(*_: Any) -> dict[str, Any]:
    """What a non-main data-parallel process saves: nothing (rank 0 writes the folder)."""
    return {"artefacts": {}, "manifest_hash": None}


def save_model_files(model: Any, tokenizer: Any, out_dir: Path) -> dict[str, str]:
    """The adapter (or model) and tokenizer files, by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {
        path.name: str(path)
        for path in sorted(out_dir.iterdir())
        if path.is_file() and path.name != TRAINING_MANIFEST
    }


def data_record(plan: TrainingPlan) -> dict[str, Any]:
    """The manifest's ``data`` section: where the rows came from and what became of them."""
    data, config = plan.data, plan.config
    return {
        "dir": data.source,
        "format": data.format,
        "fingerprint": data.fingerprint,
        "export_id": (data.manifest or {}).get("export_id"),
        "export_manifest": data.manifest_path,
        "export_manifest_hash": data.manifest_hash,
        "recipe": (data.manifest or {}).get("recipe"),
        "counts": plan.counts,
        "overlong": config.overlong,
        "max_seq_len": config.max_seq_len,
    }


def versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }


def training_manifest(
    plan: TrainingPlan,
    training_run_id: str,
    started_event_id: str,
    metrics: dict[str, float],
    artefacts: dict[str, str],
) -> dict[str, Any]:
    config, base = plan.config, plan.base
    lora = {
        "r": config.lora_r,
        "alpha": config.lora_alpha,
        "dropout": config.lora_dropout,
        "targets": config.lora_targets,
    }
    return {
        "training_run_id": training_run_id,
        "training_started_event_id": started_event_id,
        "method": config.method,
        "base_model": {
            "spec": config.base_model,
            "name": base.name,
            "weights_hash": base.weights_hash,
            "architecture": base.model.config.model_type,
        },
        "lora": lora if config.method == "lora" else None,
        "config": plan.run_config,
        "data": data_record(plan),
        "metrics": metrics,
        "artefacts": artefacts,
        "code_version": code_version(),
        "versions": versions(),
    }


def save_artefacts(
    model: Any,
    plan: TrainingPlan,
    training_run_id: str,
    started_event_id: str,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """The adapter (or whole model), the tokenizer and training_manifest.json, which links back
    to the export manifest. Returns the manifest with its own hash added."""
    out_dir = plan.out_dir
    artefacts = save_model_files(model, plan.base.tokenizer, out_dir)
    manifest = training_manifest(plan, training_run_id, started_event_id, metrics, artefacts)
    # Portable adapter_config.json (hub id) and a real model card: medstore.training.model_card.
    for name in finish_adapter(out_dir, manifest):
        artefacts[name] = str(out_dir / name)
    text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    (out_dir / TRAINING_MANIFEST).write_text(text, encoding="utf-8")
    artefacts[TRAINING_MANIFEST] = str(out_dir / TRAINING_MANIFEST)
    return {**manifest, "artefacts": artefacts, "manifest_hash": content_hash(text)}
