"""`eval`: the answer formats and scorers on hand-written answers (fast), and base vs a freshly
trained adapter on a handful of MEDEC notes with the bundled model (slow)."""

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
    medec_examples,
    score_json,
    score_medec,
    score_structure,
)
from medstore.training.medec_answers import parse_answer, run_line, sentence_id_of
from medstore.warehouse.store import Warehouse

from .test_medec_source import pair_row, write_medec

CLEAN_NOTE = Example([], {})
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


SENTENCES = {0: "A 60-year-old man has chest pain.", 1: "Aspirin is given.", 2: "He rests."}


@pytest.mark.parametrize(
    ("output", "verdict", "sentence_id", "correction"),
    [
        # medec-cot's critic, reasoning first
        ("<think>the drug is wrong</think>\n\nVerdict: ERROR\nError sentence: Aspirin is given."
         "\nCorrection: Heparin is given.", "ERROR", 1, "Heparin is given."),
        ("<reasoning>fine</reasoning>\nVerdict: CORRECT", "CORRECT", None, None),
        ("**Verdict:** ERROR\n**Error sentence:** aspirin is  given\nCorrection: Heparin.",
         "ERROR", 1, "Heparin."),
        # medec-safe, with and without its reasoning block
        ("INCORRECT\nError sentence: Aspirin is given.\nCorrection: Heparin is given.", "ERROR",
         1, "Heparin is given."),
        ("<think>x</think>\n\nINCORRECT\nError sentence: Aspirn is given\nCorrection: Heparin",
         "ERROR", 1, "Heparin"),
        ("CORRECT", "CORRECT", None, None),
        # plain: a bare verdict, an id, the MEDEC paper's "ID corrected sentence"
        ("Correct.", "CORRECT", None, None),
        ("ERROR\nError sentence: 2", "ERROR", 2, None),
        ("1 Heparin is given.", "ERROR", 1, "Heparin is given."),
        ("1 | Heparin is given.", "ERROR", 1, "Heparin is given."),
        # nothing to read: unparsed, so no line (counted wrong)
        ("I am not sure.", None, None, None),
        ("<think>still reasoning when the tokens ran out, ERROR maybe", None, None, None),
        # the verdict after the reasoning counts, not a word inside it
        ("<think>The note says ERROR somewhere</think> Verdict: CORRECT", "CORRECT", None, None),
    ],
)  # fmt: skip
def test_every_answer_format_is_parsed(
    output: str, verdict: str | None, sentence_id: int | None, correction: str | None
) -> None:
    answer = parse_answer(output)
    assert answer.verdict == verdict
    if verdict == "ERROR":
        assert sentence_id_of(answer, SENTENCES) == sentence_id
        assert answer.correction == correction


def test_quoting_the_whole_note_names_no_sentence() -> None:
    whole = " ".join(SENTENCES.values())
    answer = parse_answer(f"Verdict: ERROR\nError sentence: {whole}\nCorrection: x")
    assert sentence_id_of(answer, SENTENCES) == -1
    assert run_line("t-1", answer, SENTENCES) == "t-1 1 -1 x"
    assert run_line("t-1", parse_answer("CORRECT"), SENTENCES) == "t-1 0 -1 NA"
    assert run_line("t-1", parse_answer("hmm"), SENTENCES) is None
    # no usable correction (a bare "." would stop the official scorer): NA
    assert run_line("t-1", parse_answer("ERROR\nCorrection: ."), SENTENCES) == "t-1 1 -1 NA"


def test_medec_scores_are_the_mediqa_corr_ones(tmp_path: Path) -> None:
    """Perfect medec-safe and medec-cot answers score 1 everywhere; always-ERROR-and-quote-the-
    note scores the share of flagged notes on the flag and finds no error sentence."""
    rows = [pair_row("ms-x-0"), pair_row("ms-x-1", "Warfarin", "Heparin")]
    rows.append(["ms-x-2", "A clean note.", "0 A clean note.", "0", "NA", "-1", "NA", "NA", "NA"])
    path = write_medec(tmp_path / "medec.csv", rows)
    _, examples = medec_examples(str(path), 10, "safe")
    assert [e.key for e in examples] == ["ms-x-0", "ms-x-1", "ms-x-2"]
    assert examples[0].group == "medec:ms-x-0"
    safe = [
        "INCORRECT\nError sentence: Aspirin is given.\nCorrection: Heparin is given.",
        "INCORRECT\nError sentence: Warfarin is given.\nCorrection: Heparin is given.",
        "CORRECT",
    ]
    scored = score_medec(safe, examples)
    assert scored.metrics == {
        "error_flag_accuracy": 1.0, "error_sentence_accuracy": 1.0, "rouge1_f": pytest.approx(1.0),
        "rouge2_f": pytest.approx(1.0), "rougeL_f": pytest.approx(1.0), "unparsed": 0.0,
    }  # fmt: skip
    assert scored.run_file.splitlines()[0] == "ms-x-0 1 1 Heparin is given."
    critic = [f"<think>r</think>\n\nVerdict: {a}" for a in ("ERROR\nError sentence: Aspirin "
              "is given.\nCorrection: Heparin is given.", "ERROR\nError sentence: Warfarin is "
              "given.\nCorrection: Heparin is given.", "CORRECT")]  # fmt: skip
    assert score_medec(critic, examples).metrics["error_sentence_accuracy"] == 1.0
    note = "A 60-year-old man has chest pain. Aspirin is given."
    lazy = score_medec([f"ERROR\nError sentence: {note}"] * 3, examples)
    assert lazy.metrics["error_flag_accuracy"] == pytest.approx(2 / 3)
    # No sentence id is found in a whole note (-1); the clean note's reference id is -1 too,
    # which the official metric counts as right.
    assert lazy.metrics["error_sentence_accuracy"] == pytest.approx(1 / 3)
    unsure = score_medec(["not sure"] * 3, examples)
    assert unsure.metrics["unparsed"] == 1.0 and unsure.counts["missing"] == 3


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
                    "--limit", "2", "--max-new-tokens", "6", "--db", str(db),
                    "--out", str(tmp_path / "eval"))  # fmt: skip
    assert result.exit_code == 0, result.output
    table = result.output.splitlines()
    assert table[1].split()[:3] == ["role", "model", "error_flag_accuracy"]
    assert [line.split()[0] for line in table[3:5]] == ["base", "trained"]
    with Warehouse(db) as warehouse:
        events = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'eval_result' ORDER BY id"
        )
    payloads = [json.loads(event["payload_json"]) for event in events]
    assert [p["role"] for p in payloads] == ["base", "trained"]
    assert payloads[0]["eval_id"] == payloads[1]["eval_id"]
    assert payloads[1]["training_run_id"] and payloads[1]["examples"] == 2
    assert set(payloads[1]["metrics"]) == {
        "error_flag_accuracy", "error_sentence_accuracy", "rouge1_f", "rouge2_f", "rougeL_f",
        "unparsed",
    }  # fmt: skip
    run_file = Path(payloads[1]["run_file"])
    assert run_file.is_file() and payloads[1]["run_file_hash"]


@pytest.mark.slow
def test_teacher_base_and_trained_student_side_by_side(tmp_path: Path, monkeypatch) -> None:
    """The API teacher that made the data (the fake server), the bundled base model and the
    student trained on the teacher's medec-cot export, in one table; the student is refused
    the notes it trained on."""
    from .fakeserver import serve
    from .test_eval_endpoint import critic
    from .test_export_splits import export, run_medec

    monkeypatch.setenv("OPENAI_API_KEY", "test")
    seen = write_medec(tmp_path / "seen.csv", [pair_row(f"ms-x-{i}", f"Drug{i}") for i in range(2)])
    db = tmp_path / "w.db"
    run_medec("medec-cot", db, seen)
    export(db, tmp_path / "export", "medec-cot", "--splits", "train=1")
    trained = invoke("train", "--data", str(tmp_path / "export"), "--out", str(tmp_path / "run"),
                     "--db", str(db), "--max-steps", "1", "--max-seq-len", "256",
                     "--no-progress")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    unseen = write_medec(tmp_path / "unseen.csv", [pair_row("ms-y-0", "Warfarin")])
    with serve() as server:
        server.set_responder(critic)
        args = ["eval", "--task", "medec-detect", "--base-url", server.openai_base_url,
                "--model", "fake", "--student", str(tmp_path / "run"), "--max-new-tokens", "8",
                "--db", str(db), "--out", str(tmp_path / "eval")]  # fmt: skip
        result = invoke(*args, "--data", str(unseen))
        assert result.exit_code == 0, result.output
        refused = invoke(*args, "--data", str(seen))
    rows = [line.split() for line in result.output.splitlines()[3:6]]
    assert [row[:2] for row in rows] == [
        ["teacher", "fake"], ["base", "bundled"], ["trained", str(tmp_path / "run")],
    ]  # fmt: skip
    assert rows[0][2:4] == ["1.000", "1.000"]  # the teacher finds the error and its sentence
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "base.txt", "teacher.txt", "trained.txt",
    ]  # fmt: skip
    assert refused.exit_code == 1 and "was trained on 2 of the 2 eval examples" in refused.output
