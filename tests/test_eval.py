"""`eval`: the scorers on hand-written answers (fast), and base vs a freshly trained adapter on
a handful of MEDEC notes with the bundled model (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.training.eval import resolve_candidate
from medstore.training.eval_tasks import (
    EvalError,
    Example,
    score_json,
    score_medec,
    score_structure,
)
from medstore.warehouse.store import Warehouse

from .test_medec_source import pair_row, write_medec

ERROR_NOTE = Example([], {"label": "ERROR", "sentence": "Aspirin is given."})
CLEAN_NOTE = Example([], {"label": "CORRECT"})
HIERARCHY = """- Most likely a tension headache
  - Why
    - pain on both sides
    - worse with stress
  - What to do
    - rest and fluids
"""
EXPERT_JSON = {
    "diagnosis": [{"condition": "Acute coronary syndrome", "icd10_code": "I24.9"}],
}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_medec_scores_flag_and_sentence() -> None:
    outputs = [
        "<think>the drug is wrong</think>\nVerdict: ERROR\nError sentence: Aspirin is given.",
        "<reasoning>fine</reasoning>\nVerdict: CORRECT",
        "I am not sure.",
        "<think>The note says ERROR somewhere</think> Verdict: CORRECT",
    ]
    metrics = score_medec(outputs, [ERROR_NOTE, CLEAN_NOTE, CLEAN_NOTE, ERROR_NOTE])
    assert metrics == {"flag_accuracy": 0.5, "error_sentence_match": 0.5, "unparsed": 0.25}


def test_structure_and_json_scores() -> None:
    assert score_structure([HIERARCHY, "Just rest."], [CLEAN_NOTE] * 2)["structure_ok"] == 0.5
    answers = [
        "<think>x</think>\n```json\n" + json.dumps(EXPERT_JSON) + "\n```",
        '{"diagnosis": "broken"',
        "no json at all",
    ]
    metrics = score_json(answers, [CLEAN_NOTE] * 3)
    assert metrics["json_parses"] == pytest.approx(1 / 3)
    assert metrics["schema_valid"] <= metrics["json_parses"]


def test_model_folder_errors(tmp_path: Path) -> None:
    assert resolve_candidate("bundled").adapter_dir is None
    with pytest.raises(EvalError, match="neither a trained adapter nor a model folder"):
        resolve_candidate(str(tmp_path))
    result = invoke("eval", "--model", "bundled", "--task", "json-validity")
    assert result.exit_code == 1 and "json-validity needs --data" in result.output
    result = invoke(
        "eval", "--model", "bundled", "--task", "medec-detect", "--data", str(tmp_path / "x.csv")
    )
    assert result.exit_code == 1 and "no MEDEC file" in result.output


@pytest.mark.slow
def test_base_and_trained_side_by_side(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    chat = {
        "messages": [
            {"role": "system", "content": "Review the note."},
            {"role": "user", "content": "Aspirin is given for chest pain."},
            {"role": "assistant", "content": "<think>fine</think>\nVerdict: CORRECT"},
        ]
    }
    (data / "train.jsonl").write_text(json.dumps(chat) + "\n" + json.dumps(chat) + "\n")
    db = tmp_path / "w.db"
    run = tmp_path / "run"
    trained = invoke("train", "--data", str(data), "--out", str(run), "--db", str(db),
                     "--max-steps", "1", "--no-progress")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    medec = write_medec(tmp_path / "medec.csv", [pair_row("ms-x-0"), pair_row("ms-x-1")])
    result = invoke("eval", "--model", str(run), "--task", "medec-detect", "--data", str(medec),
                    "--limit", "2", "--max-new-tokens", "6", "--db", str(db))  # fmt: skip
    assert result.exit_code == 0, result.output
    table = result.output.splitlines()
    assert table[1].split()[:3] == ["role", "model", "flag_accuracy"]
    assert [line.split()[0] for line in table[3:5]] == ["base", "trained"]
    with Warehouse(db) as warehouse:
        events = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'eval_result' ORDER BY id"
        )
    payloads = [json.loads(event["payload_json"]) for event in events]
    assert [p["role"] for p in payloads] == ["base", "trained"]
    assert payloads[0]["eval_id"] == payloads[1]["eval_id"]
    assert payloads[1]["training_run_id"] and payloads[1]["examples"] == 2
    assert set(payloads[1]["metrics"]) == {"flag_accuracy", "error_sentence_match", "unparsed"}
