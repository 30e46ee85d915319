"""The MEDIQA-CORR scorer held to hand-computed figures: NA handling, missing and repeated lines,
malformed lines by number, the official script's quirks, and `eval --run-file`.

The ROUGE values are those of the PyPI package ``rouge`` (which the official script uses): it
counts distinct n-grams, so "the cat sat" against "the cat sat on the mat" has unigram recall
3/5, precision 1 and F1 2·0.6·1/(1.6 + 1e-8) = 0.7499999953125; bigram recall 2/5, F1
0.5714285673469389; ROUGE-L (summary level) F1 0.7499999953125.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.training.mediqa_corr import (
    CorrError,
    parse_run_lines,
    read_reference,
    read_run_file,
    score_run,
)

COLUMNS = ["Text ID", "Text", "Sentences", "Error Flag", "Error Type", "Error Sentence ID",
           "Error Sentence", "Corrected Sentence", "Corrected Text"]  # fmt: skip
R1, R2, RL = 0.7499999953125, 0.5714285673469389, 0.7499999953125
RUN = """t-1 1 2 "the cat sat"
t-2 1 3 Give more fluids.
t-2 0 -1 NA
T-3 1 0 aspirin is given
t-4 1 -1 "NA"

garbage
t-9 0 -1 NA
"""


def reference_row(text_id: str, flag: str, sentence: str, correction: str) -> list[str]:
    return [text_id, "A note.", "0 A note.", flag, "NA", sentence, "NA", correction, "A note."]


def write_reference(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return write_reference(
        tmp_path / "reference.csv",
        [
            reference_row("t-1", "1", "2", "the cat sat on the mat"),
            reference_row("t-2", "0", "-1", ""),  # pandas reads an empty cell as NaN: "NA"
            reference_row("t-3", "1", "0", "aspirin is given daily"),
            [""] * len(COLUMNS),  # a blank row, as at the end of the released test CSV
            reference_row("t-4", "0", "-1", "NA"),
        ],
    )


def test_hand_computed_scores(reference: Path, tmp_path: Path) -> None:
    run_file = tmp_path / "run.txt"
    run_file.write_text(RUN)
    scored = score_run(read_reference(reference), read_run_file(run_file))
    assert scored.metrics["error_flag_accuracy"] == 0.5  # t-1, t-2 right; t-3 missing; t-4 flag 1
    assert scored.metrics["error_sentence_accuracy"] == 0.75  # t-4's -1 matches too
    # t-1: ROUGE of the pair; t-2 and t-4: both NA (t-4's quoted "NA" is NA) count 1; t-3: 0.
    assert scored.metrics["rouge1_f"] == pytest.approx((R1 + 2) / 4, abs=1e-15)
    assert scored.metrics["rouge2_f"] == pytest.approx((R2 + 2) / 4, abs=1e-15)
    assert scored.metrics["rougeL_f"] == pytest.approx((RL + 2) / 4, abs=1e-15)
    assert scored.metrics["rouge1_f_pairs_mean"] == pytest.approx(R1, abs=1e-15)
    assert scored.counts == {
        "texts": 4, "predicted": 3, "missing": 1, "unknown_ids": 1, "malformed_lines": 2,
        "repeated_ids": 1, "reference_blank_rows": 1, "reference_na": 2, "system_na": 2,
        "both_na": 2, "rouge_pairs": 1,
    }  # fmt: skip
    problems = "\n".join(scored.problems)
    assert f"{run_file}:4: not a run line" in problems  # upper-case text ids are not allowed
    assert f"{run_file}:7: not a run line" in problems and "'garbage'" in problems
    assert f"{run_file}:3: t-2 given again" in problems
    assert "1 text id(s) not in" in problems and "t-9" in problems
    assert "no line for 1 text(s), counted wrong: t-3" in problems


def test_na_rules(reference: Path) -> None:
    ref = read_reference(reference)
    # A flag of 0 makes any correction NA; a correction for a text without error scores 0.
    run = parse_run_lines("t-1 0 -1 the cat sat\nt-2 1 -1 drink water\n", "run")
    assert run.lines["t-1"].correction == "NA"
    scored = score_run(ref, run)
    assert scored.metrics["rouge1_f"] == 0.0
    assert scored.counts["both_na"] == 0 and scored.counts["rouge_pairs"] == 0
    # Spaces around the line and inside the correction, and surrounding quotes, do not matter;
    # two spaces between the first three fields make it an invalid line, as in the script.
    run = parse_run_lines('  t-1 1 2   ""the  cat sat"  \nt-2  0 -1 NA\n', "run")
    assert run.lines["t-1"].correction == "the cat sat"
    assert run.malformed == [(2, "t-2  0 -1 NA")]
    assert score_run(ref, run).metrics["rouge1_f"] == pytest.approx(R1 / 4, abs=1e-15)
    # An empty run file: everything is missing, so every figure is 0.
    empty = score_run(ref, parse_run_lines("", "run"))
    assert set(empty.metrics.values()) == {0.0} and empty.counts["missing"] == 4


def test_what_stops_the_official_script_is_named(reference: Path, tmp_path: Path) -> None:
    ref = read_reference(reference)
    with pytest.raises(CorrError, match=r"run:2: the rouge package cannot score"):
        score_run(ref, parse_run_lines("t-2 0 -1 NA\nt-1 1 2 ...\n", "run"))
    with pytest.raises(CorrError, match=r"run:1: the official script stops on this line"):
        parse_run_lines("t-1 1 2 give \\d mg\n", "run")
    # An escape the script's re.sub accepts gives what the script gets: "\\\\" becomes "\\".
    assert parse_run_lines("t-1 1 2 a\\\\b\n", "run").lines["t-1"].correction == "a\\b"


def test_bad_reference_files(tmp_path: Path) -> None:
    bad_flag = write_reference(tmp_path / "a.csv", [reference_row("t-1", "yes", "2", "x")])
    with pytest.raises(CorrError, match=r"a\.csv:2: Error Flag 'yes' is not an integer"):
        read_reference(bad_flag)
    (tmp_path / "b.csv").write_text("Text ID,Text\nt-1,x\n")
    with pytest.raises(CorrError, match="no column Error Flag, Error Sentence ID"):
        read_reference(tmp_path / "b.csv")
    repeated = write_reference(
        tmp_path / "c.csv",
        [reference_row("t-1", "1", "2", "x"), reference_row("t-1", "0", "-1", "NA")],
    )
    ref = read_reference(repeated)
    assert list(ref.texts) == ["t-1"] and ref.texts["t-1"].flag == "0"  # the last row counts
    assert ref.repeated_ids == ["t-1"]
    with pytest.raises(CorrError, match="no such run file"):
        read_run_file(tmp_path / "nope.txt")


def test_cli_scores_a_run_file_without_a_model(reference: Path, tmp_path: Path) -> None:
    run_file = tmp_path / "run.txt"
    run_file.write_text(RUN)
    args = ["eval", "--task", "medec-detect", "--run-file", str(run_file), "--data",
            str(reference), "--db", str(tmp_path / "w.db")]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["error_flag_accuracy"] == 0.5 and report["error_sentence_accuracy"] == 0.75
    assert {"rouge1_f", "rouge2_f", "rougeL_f", "counts"} <= set(report)
    assert report["counts"]["malformed_lines"] == 2
    assert any(":7: not a run line" in problem for problem in report["problems"])
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and "error_flag_accuracy      0.5000" in text.output
    assert "not a run line" in text.output
    with_model = CliRunner().invoke(cli, [*args, "--model", "bundled"])
    assert with_model.exit_code == 2 and "give no --model" in with_model.output
    missing = CliRunner().invoke(cli, [*args[:4], str(tmp_path / "nope.txt"), *args[5:]])
    assert missing.exit_code == 1 and "no such run file" in missing.output
