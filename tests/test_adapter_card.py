"""A trained adapter is portable and documented: a medec-cot adapter on the bundled model names
its base by hub id, carries a model card with its data lineage and licences, and a copy of it
loads with peft in a fresh offline process onto the base model resolved from the hub id through
the local hub cache. Plus the card's credentialed-data notice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.training.hub_cache import BUNDLED_HUB_ID
from medstore.training.model_card import CREDENTIALED_WEIGHTS, render_model_card

from .test_export_ecosystem import repaired_db  # noqa: F401 (a module-scoped fixture)

TINY = ("--max-seq-len", "384", "--batch-size", "1", "--no-progress", "--logging-steps", "1")
LOAD = """
import json, sys, torch
from huggingface_hub import try_to_load_from_cache
from peft import AutoPeftModelForCausalLM, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
hub_id, adapter = sys.argv[1], sys.argv[2]
base = AutoModelForCausalLM.from_pretrained(hub_id)
model = PeftModel.from_pretrained(base, adapter).eval()
tokenizer = AutoTokenizer.from_pretrained(adapter)
prompt = tokenizer("Review this clinical note for a medical error.", return_tensors="pt")
with torch.inference_mode():
    trained = model(**prompt).logits
    with model.disable_adapter():
        original = model(**prompt).logits
    auto = AutoPeftModelForCausalLM.from_pretrained(adapter).eval()(**prompt).logits
print(json.dumps({
    "changed": float((trained - original).abs().max()),
    "auto_same": float((auto - trained).abs().max()),
    "config_file": try_to_load_from_cache(hub_id, "config.json"),
}))
"""


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def load_in_fresh_process(adapter: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_CACHE": str(cache)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", LOAD, BUNDLED_HUB_ID, str(adapter)],
        env=env, capture_output=True, text=True, timeout=600, cwd=adapter.parent,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1800)  # trains, then loads the model twice in a fresh process
def test_a_copied_adapter_loads_offline_from_the_hub_id(
    repaired_db: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    cache = tmp_path / "hub-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    db = tmp_path / "w.db"
    shutil.copy(repaired_db, db)
    exported = invoke("export", "--recipe", "medec-cot", "--format", "jsonl",
                      "--out", str(tmp_path / "export"), "--db", str(db))  # fmt: skip
    assert exported.exit_code == 0, exported.output
    run = tmp_path / "run"
    result = invoke("train", "--data", str(tmp_path / "export"), "--out", str(run), "--db",
                    str(db), *TINY, "--max-steps", "2", "--lr", "5e-3")  # fmt: skip
    assert result.exit_code == 0, result.output

    config = json.loads((run / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == BUNDLED_HUB_ID and config["revision"] is None
    base = json.loads((run / "base_model.json").read_text())
    manifest = json.loads((run / "training_manifest.json").read_text())
    export_manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert base["weights_hash"] == manifest["base_model"]["weights_hash"]
    assert base["local_revision"] == base["weights_hash"].split(":")[-1][:40]
    assert {"README.md", "base_model.json"} <= set(manifest["artefacts"])

    card = (run / "README.md").read_text()
    assert f"base_model: {BUNDLED_HUB_ID}" in card.split("---")[1]
    assert "[More Information Needed]" not in card
    assert export_manifest["export_id"] in card
    assert manifest["data"]["export_manifest_hash"] in card
    for label, n in export_manifest["counts"]["labels"].items():
        assert f"| medec-cot | {label} |" in card and f"| {n} |" in card
    assert f"| lora_r | `{manifest['lora']['r']}` |" in card and "| max_steps | `2` |" in card
    for name, value in manifest["metrics"].items():
        assert f"| {name} | {value:g} |" in card
    assert "MEDEC (CC BY 4.0): Ben Abacha A." in card
    assert "do not share these weights" not in card

    copied = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(run, copied)
    shutil.rmtree(run)  # nothing may lean on the original folder
    loaded = load_in_fresh_process(copied, cache)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    figures = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert figures["changed"] > 1e-4 and figures["auto_same"] < 1e-5
    # The hub id resolved through the registered snapshot of this test's own cache.
    repo = cache / f"models--{BUNDLED_HUB_ID.replace('/', '--')}"
    assert figures["config_file"] == str(
        repo / "snapshots" / base["local_revision"] / "config.json"
    )

    check_lineage(copied, db, manifest, export_manifest)


def check_lineage(adapter: Path, db: Path, manifest: dict, export_manifest: dict) -> None:
    """`lineage` follows the copied adapter back to its run, export and samples."""
    result = invoke("lineage", str(adapter), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    chain = json.loads(result.output)
    run, export = chain["training_run"], chain["export"]
    assert run["training_run_id"] == manifest["training_run_id"] and run["manifest_verified"]
    assert run["finished"]["payload"]["status"] == "completed"
    assert export["export_id"] == export_manifest["export_id"] and export["manifest_verified"]
    labels = {row["label"]: row["n"] for row in export["samples"]}
    assert labels == export_manifest["counts"]["labels"]
    text = invoke("lineage", str(adapter), "--db", str(db)).output
    assert f"training run {manifest['training_run_id']}: completed" in text
    assert f"export {export_manifest['export_id']}: medec-cot sft as jsonl" in text
    assert f"samples: {export_manifest['counts']['total']}" in text
    sample_id = export_manifest["rows"][0]["sample_id"]
    with_sample = invoke("lineage", str(adapter), "--db", str(db), "--sample", sample_id)
    assert with_sample.exit_code == 0, with_sample.output
    assert f"sample {sample_id}:" in with_sample.output and "sample_accepted" in with_sample.output
    unknown = invoke("lineage", str(adapter), "--db", str(db), "--sample", "s-nope")
    assert unknown.exit_code == 1 and "sample s-nope is not in export" in unknown.output
    manifest_file = adapter / "training_manifest.json"
    manifest_file.write_text(manifest_file.read_text().replace('"lora"', '"full"', 1))
    tampered = invoke("lineage", str(adapter), "--db", str(db)).output
    assert "training_manifest.json DOES NOT MATCH the recorded hash" in tampered


def test_credentialed_data_forbids_sharing_the_weights() -> None:
    manifest = {
        "training_run_id": "t-1",
        "method": "lora",
        "base_model": {"spec": "bundled", "weights_hash": "blake2b:" + "ab" * 32},
        "lora": {"r": 8},
        "config": {"lr": 0.0002},
        "data": {"export_id": "x-1", "export_manifest_hash": "blake2b:cd", "counts": {}},
        "metrics": {"train_loss": 1.5},
    }
    weights_hash = manifest["base_model"]["weights_hash"]
    base = {"spec": "bundled", "hub_id": BUNDLED_HUB_ID, "local_revision": "ab" * 20,
            "weights_hash": weights_hash, "weights": "a GGUF"}  # fmt: skip
    mimic = {
        "recipe": {"name": "mimic-dialogue", "version": "1"},
        "credentialed_source": True,
        "licences": ["MIMIC-IV: PhysioNet Credentialed Health Data License 1.5.0"],
        "counts": {"labels": {"admission-1": 2}, "splits": {"train": 2},
                   "labels_by_split": {"train": {"admission-1": 2}}},
    }  # fmt: skip
    card = render_model_card(manifest, base, mimic)
    assert CREDENTIALED_WEIGHTS in card and "- credentialed-data" in card
    assert "MIMIC-IV (PhysioNet Credentialed Health Data License 1.5.0)" in card
    assert "| mimic-dialogue | admission-1 | 2 | 2 |" in card
    public = render_model_card(manifest, base, {**mimic, "credentialed_source": False})
    assert CREDENTIALED_WEIGHTS not in public


def test_the_hub_cache_entry_is_the_hubs_layout_and_keeps_a_real_download(tmp_path: Path) -> None:
    from medstore.training.hub_cache import register_bundled

    weights = tmp_path / "dequantised"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"weights")
    cache = tmp_path / "cache"
    first = register_bundled(weights, "b2:" + "12" * 32, cache)
    snapshot = Path(first["snapshot"])
    assert snapshot == cache / "models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots" / (
        "12" * 20
    )
    assert (snapshot / "model.safetensors").read_bytes() == b"weights"
    assert (snapshot / "model.safetensors").stat().st_ino == (
        weights / "model.safetensors"
    ).stat().st_ino  # a hard link, not a copy
    assert first["refs_main"] == "12" * 20
    assert register_bundled(weights, "b2:" + "12" * 32, cache) == first  # idempotent
    main = snapshot.parent.parent / "refs" / "main"
    main.write_text("f" * 40)  # the real model was downloaded meanwhile
    other = register_bundled(weights, "b2:" + "34" * 32, cache)
    assert other["refs_main"] == "f" * 40 and Path(other["snapshot"]).is_dir()
