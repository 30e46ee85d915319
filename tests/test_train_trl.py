"""`train` on TRL: resume after kill -9, DPO on medec-cot-shaped preference pairs, packing,
TensorBoard, a chat-template override, and the one-line refusals (QLoRA without a GPU, a
reporter that is not installed, nothing to resume). The data is written here in the shapes the
exports produce: SFT rows with `messages` plus `prompt`/`completion`, DPO rows with
`prompt`/`chosen`/`rejected` as chat turns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

REPO = Path(__file__).resolve().parent.parent
SMALL = ("--batch-size", "1", "--max-seq-len", "128", "--no-progress", "--logging-steps", "1")
SYSTEM = "You are a clinician. Reply in one short sentence."
CRITIC = (
    "Find the one medical error in the clinical note, if there is one. Reason inside <think> "
    "tags, then answer 'Verdict: ERROR' or 'Verdict: CORRECT'."
)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def sft_rows(count: int = 6) -> list[dict]:
    rows = []
    for index in range(count):
        prompt = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Patient {index} has chest pain for {index + 1} days."},
        ]
        completion = [{"role": "assistant", "content": f"Get an ECG and troponin ({index})."}]
        rows.append({"messages": prompt + completion, "prompt": prompt, "completion": completion})
    return rows


def dpo_rows(count: int = 4) -> list[dict]:
    """medec-cot's preference pairs: the verified critic trace chosen, the wrong verdict
    rejected."""
    rows = []
    for index in range(count):
        note = (
            f"A {40 + index}-year-old man has crushing chest pain. ECG shows ST elevation. "
            "He is diagnosed with gastritis and sent home."
        )
        rows.append({
            "prompt": [
                {"role": "system", "content": CRITIC},
                {"role": "user", "content": note},
            ],
            "chosen": [{"role": "assistant", "content": (
                "<think>ST elevation with chest pain is a myocardial infarction.</think>\n"
                "Verdict: ERROR\nError sentence: He is diagnosed with gastritis and sent home.\n"
                "Correction: He is diagnosed with an acute myocardial infarction."
            )}],
            "rejected": [{"role": "assistant", "content": (
                "<think>The note reads consistently.</think>\nVerdict: CORRECT"
            )}],
        })  # fmt: skip
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def events(db: Path, kind: str) -> list[dict]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = :kind ORDER BY id", {"kind": kind}
        )
    return [json.loads(row["payload_json"]) for row in rows]


def summary_of(output: str) -> dict:
    return json.loads(output[output.index("{") :])


def test_refusals_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    import torch

    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    run, db = tmp_path / "run", tmp_path / "w.db"
    base = ("train", "--data", str(data), "--out", str(run), "--db", str(db))
    cases = [
        (("--resume",), "no checkpoint in"),
        (("--resume", str(tmp_path)), "not a complete checkpoint folder"),
        (("--chat-template", str(tmp_path / "nope.jinja")), "--chat-template"),
        (("--method", "dpo"), "needs `prompt`, `chosen` and `rejected` columns"),
        (("--method", "dpo", "--packing"), "--packing is for --method sft"),
        (("--load-in-4bit", "--full"), "drop --full"),
    ]
    if importlib_missing("wandb"):
        cases.append((("--report-to", "wandb"), "needs wandb: pip install wandb"))
    if importlib_missing("bitsandbytes") or not torch.cuda.is_available():
        cases.append((("--load-in-4bit",), "--load-in-4bit needs"))
    (tmp_path / "plain.txt").write_text("no template here")
    cases.append((("--chat-template", str(tmp_path / "plain.txt")), "not a Jinja template"))
    for extra, message in cases:
        result = invoke(*base, *extra)
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not run.exists() and events(db, "training_started") == []


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def latest_checkpoint_step(run: Path) -> int | None:
    """The step of the newest checkpoint whose trainer_state.json (written last) is whole."""
    steps = []
    for path in (run / "checkpoints").glob("checkpoint-*"):
        try:
            steps.append(json.loads((path / "trainer_state.json").read_text())["global_step"])
        except (OSError, ValueError):
            continue
    return max(steps) if steps else None


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three runs of the real model: about a minute on a quiet machine
def test_resume_after_kill_9_goes_on_from_the_checkpoint(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    run, db = tmp_path / "run", tmp_path / "w.db"
    args = [sys.executable, "cli.py", "train", "--data", str(data), "--out", str(run),
            "--db", str(db), *SMALL, "--max-steps", "4", "--save-steps", "1"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 600
    while latest_checkpoint_step(run) is None and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stderr = process.stderr.read().decode(errors="replace")
    assert process.returncode == -signal.SIGKILL, stderr[-2000:]
    killed_at = latest_checkpoint_step(run)
    assert killed_at is not None and killed_at < 4
    assert not (run / "training_manifest.json").exists()
    [first] = events(db, "training_started")
    assert events(db, "training_finished") == []

    again = invoke("train", "--data", str(data), "--out", str(run), "--db", str(db), *SMALL,
                   "--max-steps", "4", "--save-steps", "1")  # fmt: skip
    assert again.exit_code == 1 and "unfinished run; add --resume" in again.output

    resumed = invoke("train", "--data", str(data), "--out", str(run), "--db", str(db),
                     "--resume", *SMALL, "--max-steps", "4", "--save-steps", "1",
                     "--json")  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    summary = summary_of(resumed.output)
    assert summary["metrics"]["steps"] == 4
    assert summary["metrics"]["first_step"] == killed_at + 1
    second = events(db, "training_started")[-1]
    assert second["config"]["resumed_from"]["step"] == killed_at
    assert second["config"]["resumed_from"]["training_run_id"] == first["training_run_id"]
    logged = [e["step"] for e in events(db, "training_logged")
              if e["training_run_id"] == second["training_run_id"]]  # fmt: skip
    assert logged and min(logged) == killed_at + 1 and max(logged) == 4
    [finished] = events(db, "training_finished")
    assert finished["status"] == "completed"
    state = json.loads((run / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    manifest = json.loads((run / "training_manifest.json").read_text())
    assert manifest["config"]["resumed_from"]["checkpoint"].endswith(f"checkpoint-{killed_at}")

    other = write_jsonl(tmp_path / "other.jsonl", sft_rows(5))
    refused = invoke("train", "--data", str(other), "--out", str(run), "--db", str(db),
                     "--resume", *SMALL)  # fmt: skip
    assert refused.exit_code == 1 and "its fingerprint changed" in refused.output


@pytest.mark.slow
def test_dpo_on_medec_cot_pairs_trains_an_adapter(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel

    from medstore.training.models import load_base_model

    data = tmp_path / "dpo"
    data.mkdir()
    write_jsonl(data / "train.jsonl", dpo_rows())
    run, db = tmp_path / "run", tmp_path / "w.db"
    refused = invoke("train", "--method", "dpo", "--data", str(data), "--out", str(run),
                     "--db", str(db), "--max-seq-len", "32", "--overlong", "refuse",
                     "--no-progress")  # fmt: skip
    assert refused.exit_code == 1 and "4 preference pair(s) exceed" in refused.output
    assert not run.exists() and events(db, "training_started") == []

    result = invoke("train", "--method", "dpo", "--data", str(data), "--out", str(run),
                    "--db", str(db), "--batch-size", "2", "--max-steps", "2", "--lr", "5e-3",
                    "--max-seq-len", "512", "--no-progress", "--logging-steps", "1",
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = summary_of(result.output)
    assert summary["metrics"]["steps"] == 2 and summary["examples"]["train_examples"] == 4
    assert summary["examples"]["truncated"] == 0
    [started] = events(db, "training_started")
    assert started["config"]["objective"] == "dpo" and started["method"] == "lora"
    logged = events(db, "training_logged")
    assert [e["step"] for e in logged] == [1, 2] and all(e["loss"] for e in logged)
    manifest = json.loads((run / "training_manifest.json").read_text())
    assert manifest["config"]["objective"] == "dpo"

    base = load_base_model("bundled")
    model = PeftModel.from_pretrained(base.model, str(run)).eval()
    prompt = base.tokenizer("Verdict:", return_tensors="pt")
    with torch.inference_mode():
        trained = model(**prompt).logits
        with model.disable_adapter():
            original = model(**prompt).logits
    assert (trained - original).abs().max() > 1e-4


@pytest.mark.slow
def test_packing_tensorboard_and_chat_template(tmp_path: Path) -> None:
    from medstore.training.models import load_base_model

    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(8))
    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant: {% endif %}"
    )
    run, db = tmp_path / "run", tmp_path / "w.db"
    result = invoke("train", "--data", str(data), "--out", str(run), "--db", str(db),
                    "--packing", "--max-seq-len", "256", "--batch-size", "1", "--max-steps", "1",
                    "--report-to", "tensorboard", "--chat-template", str(template),
                    "--no-progress", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = summary_of(result.output)
    tokenizer = load_base_model("bundled").tokenizer
    tokenizer.chat_template = template.read_text()
    longest = max(
        len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False))
        for row in sft_rows(8)
    )
    # One step of batch 1 took several packed rows, not one.
    assert summary["metrics"]["tokens_trained"] > 2 * longest
    assert list((run / "runs").rglob("events.out.tfevents.*"))
    assert (run / "chat_template.jinja").read_text() == template.read_text()
    [started] = events(db, "training_started")
    assert started["config"]["packing"] is True


@pytest.mark.slow
def test_batches_pad_to_their_longest_row_and_learn_the_completion(tmp_path: Path) -> None:
    """TRL's collator pads to the batch's longest row, never to --max-seq-len; the labels are
    the completion's tokens only, for chat rows and plain prompt/completion text alike."""
    from medstore.training.config import TrainConfig
    from medstore.training.plan import plan_training
    from medstore.training.trl_trainers import build_trainer

    rows = [*sft_rows(4), {"prompt": "Q: fever and stiff neck? A:", "completion": " meningitis"}]
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    config = TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "run"), batch_size=5,
                         max_seq_len=4096, progress=False)  # fmt: skip
    plan = plan_training(config)
    assert plan.run_config["attn_implementation"] == "sdpa"
    trainer = build_trainer(plan)
    batch = next(iter(trainer.get_train_dataloader()))
    lengths = [len(example["input_ids"]) for example in plan.encoded["train"].examples]
    assert batch["input_ids"].shape == (5, max(lengths))
    tokenizer = plan.base.tokenizer
    learned = {
        tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])
        for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True)
    }
    assert " meningitis" + tokenizer.eos_token in learned
    assert "Get an ECG and troponin (0).<|im_end|>" in learned
    assert not any("chest pain" in text or "Q: fever" in text for text in learned)
