"""`train` on a consult export: clear errors before anything is written (fast), and a few steps
on the bundled SmolLM2-135M on CPU whose adapter loads with peft and changes the model (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from .test_export import consult_db, export  # noqa: F401 (a module-scoped fixture)

# The consult prompts (an 8-turn dialogue) are ~450 tokens: 512 keeps some answer tokens and
# still cuts every row.
TINY = ("--max-seq-len", "512", "--batch-size", "1", "--no-progress", "--logging-steps", "1")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def export_dir(consult_db: Path, tmp_path: Path) -> Path:  # noqa: F811
    db = tmp_path / "warehouse.db"
    shutil.copy(consult_db, db)
    export(db, tmp_path / "export")
    return tmp_path / "export"


def event_types(db: Path) -> list[str]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query(
            "SELECT event_type FROM events WHERE event_type LIKE 'training_%' ORDER BY id"
        )
    return [row["event_type"] for row in rows]


def test_missing_messages_column_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "no chat here"}\n')
    db = tmp_path / "w.db"
    result = invoke("train", "--data", str(data), "--out", str(tmp_path / "run"), "--db", str(db))
    assert result.exit_code == 1 and "no `messages` column" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists() and event_types(db) == []


def test_empty_dataset_and_missing_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("")
    db = tmp_path / "w.db"
    result = invoke("train", "--data", str(data), "--out", str(tmp_path / "run"), "--db", str(db))
    assert result.exit_code == 1 and "the dataset is empty" in result.output
    result = invoke("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and "no such export folder" in result.output
    assert not (tmp_path / "run").exists()


def test_bf16_without_a_gpu_is_refused(export_dir: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    db = tmp_path / "w2.db"
    result = invoke(
        "train",
        "--data",
        str(export_dir),
        "--out",
        str(tmp_path / "run"),
        "--bf16",
        "--db",
        str(db),
    )
    assert result.exit_code == 1 and "--bf16 needs a CUDA GPU" in result.output
    assert not (tmp_path / "run").exists() and event_types(db) == []


def test_refuses_an_occupied_folder(export_dir: Path, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("x")
    result = invoke("train", "--data", str(export_dir), "--out", str(occupied))
    assert result.exit_code == 1 and "holds no medstore training run" in result.output


@pytest.mark.slow
def test_loss_is_on_assistant_tokens_only(export_dir: Path) -> None:
    from medstore.training.data import load_training_data
    from medstore.training.encoding import IGNORE_INDEX, encode_conversations
    from medstore.training.models import load_base_model

    tokenizer = load_base_model("bundled").tokenizer
    conversation = load_training_data(export_dir).splits["train"][0]
    encoded = encode_conversations(tokenizer, [conversation], 4096, "truncate")
    [example] = encoded.examples
    learned = [t for t, label in zip(example["input_ids"], example["labels"], strict=True)
               if label != IGNORE_INDEX]  # fmt: skip
    text = tokenizer.decode(learned)
    assert text.startswith(conversation[-1]["content"][:40])
    assert conversation[1]["content"][:40] not in text and "<|im_end|>" in text
    first_answer_token = next(
        i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX
    )
    limit = first_answer_token + 5
    cut = encode_conversations(tokenizer, [conversation], limit, "truncate")
    assert cut.truncated == 1 and len(cut.examples[0]["input_ids"]) == limit
    assert cut.target_tokens == 5
    dropped = encode_conversations(tokenizer, [conversation], first_answer_token, "truncate")
    assert dropped.dropped == 1 and not dropped.examples


@pytest.mark.slow
def test_a_few_steps_make_an_adapter_that_changes_the_model(
    export_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel

    from medstore.training.models import load_base_model

    db = tmp_path / "w.db"
    run = tmp_path / "run"
    refused = invoke("train", "--data", str(export_dir), "--out", str(run), "--db", str(db),
                     *TINY, "--overlong", "refuse")  # fmt: skip
    assert refused.exit_code == 1 and "exceed --max-seq-len 512" in refused.output
    assert not run.exists()

    result = invoke("train", "--data", str(export_dir), "--out", str(run), "--db", str(db),
                    *TINY, "--max-steps", "2", "--lr", "5e-3", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["metrics"]["steps"] == 2 and summary["examples"]["truncated"] > 0
    assert {"adapter_config.json", "adapter_model.safetensors", "training_manifest.json"} <= {
        path.name for path in run.iterdir()
    }
    manifest = json.loads((run / "training_manifest.json").read_text())
    export_manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["data"]["export_id"] == export_manifest["export_id"]
    assert manifest["base_model"]["spec"] == "bundled" and manifest["method"] == "lora"
    types = event_types(db)
    assert types[0] == "training_started" and types[-1] == "training_finished"
    assert types.count("training_logged") >= 2
    with Warehouse(db) as warehouse:
        [finished] = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'training_finished'"
        )
    assert json.loads(finished["payload_json"])["status"] == "completed"

    base = load_base_model("bundled")
    model = PeftModel.from_pretrained(base.model, str(run)).eval()
    prompt = base.tokenizer("Doctor: what brings you in today?", return_tensors="pt")
    with torch.inference_mode():
        trained = model(**prompt).logits
        with model.disable_adapter():
            original = model(**prompt).logits
    assert (trained - original).abs().max() > 1e-3


def test_only_rank_zero_writes_training_events(tmp_path: Path, monkeypatch) -> None:
    from medstore.training.trainer import event_writer
    from medstore.warehouse.events import Envelope, TrainingLogged

    event = TrainingLogged(training_run_id="t", step=1, epoch=0.1, loss=1.0)
    with Warehouse(tmp_path / "w.db") as warehouse:
        monkeypatch.setenv("RANK", "1")
        [made] = event_writer(warehouse)([(event, Envelope())])
        assert made.event_id and warehouse.query("SELECT count(*) n FROM events")[0]["n"] == 0
        monkeypatch.setenv("RANK", "0")
        event_writer(warehouse)([(event, Envelope())])
        assert warehouse.query("SELECT count(*) n FROM events")[0]["n"] == 1


def test_train_flags_come_from_train_config(tmp_path: Path) -> None:
    """Every flag `train` has had is generated from TrainConfig, whose defaults and record are
    the ones runs have always written."""
    from pydantic import ValidationError

    from medstore.training.config import TrainConfig

    help_text = invoke("train", "--help").output
    for flag in ("--data", "--out", "--base-model", "--lora / --full", "--epochs", "--lr",
                 "--batch-size", "--grad-accum", "--max-seq-len", "--overlong", "--max-steps",
                 "--bf16", "--gradient-checkpointing / --no-gradient-checkpointing", "--seed",
                 "--logging-steps",
                 "--eval-steps", "--lora-r", "--lora-alpha", "--lora-targets", "--no-progress",
                 "--method [sft|dpo]", "--dpo-beta", "--packing", "--report-to", "--save-steps",
                 "--keep-checkpoints", "--resume [CHECKPOINT]", "--load-in-4bit",
                 "--chat-template FILE", "--attn-implementation", "--db", "--json"):  # fmt: skip
        assert flag in help_text
    assert "--lora-dropout" not in help_text and "--warmup-steps" not in help_text
    full = TrainConfig(data_dir="d", out_dir="o", lora=False)
    assert full.method == "full" and full.lr == 2e-5
    assert TrainConfig(data_dir="d", out_dir="o").lr == 2e-4
    assert TrainConfig(data_dir="d", out_dir="o").gradient_checkpointing  # as TRL's SFTConfig
    record = full.record()
    assert list(record)[:5] == ["data_dir", "out_dir", "base_model", "method", "epochs"]
    assert record["method"] == "full" and "lora" not in record
    with pytest.raises(ValidationError):
        TrainConfig(data_dir="d", out_dir="o", method="full")
    missing = invoke("train", "--out", str(tmp_path / "run"))
    assert missing.exit_code == 2 and "Missing option '--data'" in missing.output
    bad = invoke("train", "--data", "d", "--out", "o", "--lora-targets", "some")
    assert bad.exit_code == 2 and "--lora-targets" in bad.output
    bad = invoke("train", "--data", "d", "--out", "o", "--method", "ppo")
    assert bad.exit_code == 2 and "--method" in bad.output
    assert TrainConfig(data_dir="d", out_dir="o").record()["objective"] == "sft"


@pytest.mark.slow
def test_the_same_seed_trains_the_same_adapter(export_dir: Path, tmp_path: Path) -> None:
    """The adapter's random initial weights come from --seed too, so a rerun is identical."""
    from safetensors.numpy import load_file

    weights = []
    for name in ("first", "second"):
        run = tmp_path / name
        result = invoke("train", "--data", str(export_dir), "--out", str(run),
                        "--db", str(tmp_path / "w.db"), *TINY, "--max-steps", "1",
                        "--seed", "7")  # fmt: skip
        assert result.exit_code == 0, result.output
        weights.append(load_file(str(run / "adapter_model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][key] == weights[1][key]).all() for key in weights[0])
