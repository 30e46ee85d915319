"""The MEDEC reader on both shipped splits and on broken files."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.recipes import Skip, SourceError
from medstore.sources.medec import (
    COLUMNS,
    MedecNote,
    MedecPair,
    default_medec_path,
    parse_sentences,
    read_medec,
)

from .conftest import REPO

MEDEC_DIR = REPO.parent / "shared" / "data" / "medec"
VALIDATION = MEDEC_DIR / "MEDEC-MS-ValidationSet-with-GroundTruth-and-ErrorType.csv"
TEST_SPLIT = MEDEC_DIR / "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv"
needs_medec = pytest.mark.skipif(not VALIDATION.exists(), reason="MEDEC data not in ../shared")


def kinds(items: list) -> Counter:
    return Counter(
        f"skip: {item.reason}" if isinstance(item, Skip) else type(item).__name__ for item in items
    )


def write_medec(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


def pair_row(note_id: str, wrong: str = "Aspirin", right: str = "Heparin") -> list[str]:
    text = f"A 60-year-old man has chest pain.\n{wrong} is given."
    return [
        note_id,
        text,
        f"0 A 60-year-old man has chest pain.\n1 {wrong} is given.",
        "1",
        "treatment",
        "1",
        f"{wrong} is given.",
        f"{right} is given.",
        text.replace(wrong, right),
    ]


@needs_medec
def test_validation_split_pairs_and_notes() -> None:
    items = list(read_medec(VALIDATION))
    assert kinds(items) == {"MedecPair": 319, "MedecNote": 255}
    first = items[0]
    assert isinstance(first, MedecPair) and first.note_id == "ms-val-0"
    assert first.error_type == "causalorganism" and first.error_sentence_id == 5
    assert first.error_sentence == "Culture tests indicate Neisseria gonorrhoeae."
    assert "Trichomonas vaginalis" in first.correct_note and first.split == "validation"
    assert isinstance(items[1], MedecNote) and items[1].note_id == "ms-val-1"


@needs_medec
def test_test_split_blank_rows_are_skipped_with_a_reason() -> None:
    items = list(read_medec(TEST_SPLIT))
    assert kinds(items) == {"MedecPair": 311, "MedecNote": 286, "skip: blank row": 328}
    blank = next(item for item in items if isinstance(item, Skip))
    assert blank.source_id.startswith(TEST_SPLIT.name + ":")


@needs_medec
def test_note_texts_keep_the_files_bytes() -> None:
    """CRLF line breaks inside the test split's quoted fields survive reading."""
    raw = TEST_SPLIT.read_bytes()
    pairs = [item for item in read_medec(TEST_SPLIT) if isinstance(item, MedecPair)]
    with_crlf = [pair for pair in pairs if "\r\n" in pair.incorrect_note]
    assert with_crlf
    for pair in with_crlf[:20]:
        assert pair.incorrect_note.replace('"', '""').encode("utf-8") in raw


def test_sentences_column_joins_stray_line_breaks() -> None:
    column = "0 A woman has a rash.\n1 Serum\n\nNa+ 137 mEq/L\n2 Positive\r\n3 Done."
    assert parse_sentences(column) == {
        0: "A woman has a rash.",
        1: "Serum Na+ 137 mEq/L",
        2: "Positive",
        3: "Done.",
    }


def test_malformed_rows_are_skipped_with_reasons(tmp_path: Path) -> None:
    bad_flag = pair_row("ms-x-2")
    bad_flag[3] = "maybe"
    no_fix = pair_row("ms-x-3")
    no_fix[8] = "NA"
    wrong_id = pair_row("ms-x-4")
    wrong_id[5] = "0"
    rows = [
        pair_row("ms-x-0"),
        ["ms-x-1", "A correct note.", "0 A correct note.", "0", "NA", "-1", "NA", "NA", "NA"],
        bad_flag,
        no_fix,
        wrong_id,
        pair_row("ms-x-0"),
        ["", "", "", "", "", "", "", "", ""],
        ["ms-x-5", "too short"],
    ]
    items = list(read_medec(write_medec(tmp_path / "m.csv", rows)))
    details = [
        (item.source_id, item.reason, item.detail) for item in items if isinstance(item, Skip)
    ]
    assert kinds(items)["MedecPair"] == 1 and kinds(items)["MedecNote"] == 1
    assert details == [
        ("ms-x-2", "malformed row", "Error Flag 'maybe', expected 0 or 1"),
        ("ms-x-3", "malformed row", "flagged but Corrected Text is empty"),
        ("ms-x-4", "malformed row", "sentence 0 of Sentences is not the Error Sentence"),
        ("ms-x-0", "malformed row", "Text ID used twice (line 18)"),
        ("m.csv:22", "blank row", None),
        ("m.csv:23", "malformed row", "2 fields, expected 9"),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"id": 1}]', "not a MEDEC CSV"),
        ("id,text\n1,hello\n", "not a MEDEC CSV: expected the columns Text ID"),
        ("", "empty file"),
    ],
)
def test_not_a_medec_file_is_one_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "other.csv"
    path.write_text(content)
    with pytest.raises(SourceError, match=expected):
        list(read_medec(path))


def test_missing_file_and_default_path(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SourceError, match="no such MEDEC CSV file"):
        list(read_medec(tmp_path / "nope.csv"))
    monkeypatch.setenv("MEDSTORE_MEDEC_DIR", str(tmp_path))
    assert default_medec_path().parent == tmp_path
    with pytest.raises(SourceError, match="set MEDSTORE_MEDEC_DIR"):
        list(read_medec(None))


@pytest.mark.parametrize("recipe", ["medec-safe", "medec-cot"])
def test_cli_rejects_a_non_medec_file_in_one_line(tmp_path: Path, recipe: str) -> None:
    source = tmp_path / "scenarios.json"
    source.write_text('[{"id": "a"}]')
    db = tmp_path / "w.db"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--recipe",
            recipe,
            "--source",
            str(source),
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--db",
            str(db),
            "--no-progress",
        ],
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "not a MEDEC CSV" in result.output and str(source) in result.output
