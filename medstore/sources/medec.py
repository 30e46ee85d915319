"""MEDEC-MS reader: the released CSV layout, as error pairs and correct notes.

A flagged row (Error Flag 1) is a pair: ``Text`` is the note with the doctor-annotated error,
``Corrected Text`` the verified correct note. An unflagged row is one correct note. Blank and
malformed rows become ``Skip`` items with a reason, so every row is accounted for. Note texts are
kept exactly as in the file (the CSV is read with ``newline=""``, so line breaks inside quoted
fields, CRLF included, survive): the INCORRECT branch of medec-safe relies on that.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medstore.resources import REPO_DIR
from medstore.sources.base import Skip, SourceError

COLUMNS = (
    "Text ID",
    "Text",
    "Sentences",
    "Error Flag",
    "Error Type",
    "Error Sentence ID",
    "Error Sentence",
    "Corrected Sentence",
    "Corrected Text",
)
ERROR_TYPES = ("diagnosis", "management", "treatment", "pharmacotherapy", "causalorganism")
VALIDATION_FILE = "MEDEC-MS-ValidationSet-with-GroundTruth-and-ErrorType.csv"
NUMBERED_LINE = re.compile(r"^(\d+) (.*)$")


@dataclass(frozen=True)
class MedecPair:
    """A flagged row: the note with the error and its doctor-verified correction."""

    note_id: str
    split: str
    incorrect_note: str
    correct_note: str
    error_type: str  # lower-case, e.g. "causalorganism"
    error_sentence_id: int
    error_sentence: str
    corrected_sentence: str
    line: int


@dataclass(frozen=True)
class MedecNote:
    """An unflagged row: a note the annotators found correct."""

    note_id: str
    split: str
    note: str
    line: int


def default_medec_path() -> Path:
    """The validation split: $MEDSTORE_MEDEC_DIR, else ../shared/data/medec beside the checkout."""
    folder = os.environ.get("MEDSTORE_MEDEC_DIR")
    base = Path(folder) if folder else REPO_DIR.parent / "shared" / "data" / "medec"
    return base / VALIDATION_FILE


def resolve_medec_path(source: str | Path | None) -> Path:
    """A CSV file, or a folder holding the validation split; one-line SourceError if missing."""
    path = Path(source) if source else default_medec_path()
    if path.is_dir():
        path = path / VALIDATION_FILE
    if not path.exists():
        hint = "" if source else " (pass --source PATH or set MEDSTORE_MEDEC_DIR)"
        raise SourceError(f"{path}: no such MEDEC CSV file{hint}")
    return path.resolve()


def split_name(path: Path) -> str:
    name = path.name.lower()
    if "validation" in name:
        return "validation"
    if "test" in name:
        return "test"
    if "train" in name:
        return "train"
    return "unknown"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_sentences(column: str) -> dict[int, str]:
    """The numbered ``Sentences`` column as {index: sentence}.

    Lines that do not start with an index are stray line breaks inside a sentence: they are
    joined to the sentence before them.
    """
    sentences: dict[int, str] = {}
    current: int | None = None
    for line in column.splitlines():
        match = NUMBERED_LINE.match(line)
        if match:
            current = int(match.group(1))
            sentences[current] = match.group(2).strip()
        elif current is not None and line.strip():
            sentences[current] = f"{sentences[current]} {line.strip()}".strip()
    return sentences


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def read_medec(source: str | Path | None = None) -> Iterator[MedecPair | MedecNote | Skip]:
    """Every row of a MEDEC CSV as a pair, a correct note, or a Skip with its reason."""
    path = resolve_medec_path(source)
    split = split_name(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            check_header(path, header)
            seen: set[str] = set()
            end_of_previous = reader.line_num
            for fields in reader:
                # A record can span lines (breaks inside quoted fields): name the one it starts on.
                start = end_of_previous + 1
                end_of_previous = reader.line_num
                item = parse_row(path.name, start, split, fields, seen)
                if not isinstance(item, Skip):
                    seen.add(item.note_id)
                yield item
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a UTF-8 text file (byte {exc.start})") from exc
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable CSV file: {exc}") from exc


def check_header(path: Path, header: list[str] | None) -> None:
    if header is None:
        raise SourceError(f"{path}: empty file, expected a MEDEC CSV")
    missing = [column for column in COLUMNS if column not in [h.strip() for h in header]]
    if missing or len(header) != len(COLUMNS):
        raise SourceError(
            f"{path}: not a MEDEC CSV: expected the columns {', '.join(COLUMNS)}; "
            f"missing {', '.join(missing) or 'none'}, found {len(header)} columns"
        )


def parse_row(
    file_name: str, line: int, split: str, fields: list[str], seen: set[str]
) -> MedecPair | MedecNote | Skip:
    where = f"{file_name}:{line}"
    if not any(field.strip() for field in fields):
        return Skip(where, "blank row")
    if len(fields) != len(COLUMNS):
        return Skip(where, "malformed row", f"{len(fields)} fields, expected {len(COLUMNS)}")
    row = dict(zip(COLUMNS, fields, strict=True))
    note_id = row["Text ID"].strip()
    if not note_id:
        return Skip(where, "malformed row", "empty Text ID")
    if note_id in seen:
        return Skip(note_id, "malformed row", f"Text ID used twice (line {line})")
    if not row["Text"].strip():
        return Skip(note_id, "malformed row", "empty Text")
    flag = row["Error Flag"].strip()
    if flag == "0":
        return MedecNote(note_id, split, row["Text"], line)
    if flag != "1":
        return Skip(note_id, "malformed row", f"Error Flag {flag!r}, expected 0 or 1")
    return parse_pair(note_id, split, line, row)


def parse_pair(note_id: str, split: str, line: int, row: dict[str, str]) -> MedecPair | Skip:
    def blank(column: str) -> bool:
        return row[column].strip() in ("", "NA")

    for column in ("Corrected Text", "Error Sentence", "Corrected Sentence"):
        if blank(column):
            return Skip(note_id, "malformed row", f"flagged but {column} is empty")
    error_type = row["Error Type"].strip().lower()
    if error_type not in ERROR_TYPES:
        return Skip(note_id, "malformed row", f"unknown Error Type {row['Error Type']!r}")
    try:
        sentence_id = int(row["Error Sentence ID"].strip())
    except ValueError:
        return Skip(note_id, "malformed row", f"Error Sentence ID {row['Error Sentence ID']!r}")
    error_sentence = collapse_whitespace(row["Error Sentence"])
    if error_sentence not in collapse_whitespace(row["Text"]):
        return Skip(note_id, "malformed row", "the Error Sentence is not in the Text")
    numbered = parse_sentences(row["Sentences"]).get(sentence_id)
    if numbered is None or collapse_whitespace(numbered) != error_sentence:
        return Skip(
            note_id,
            "malformed row",
            f"sentence {sentence_id} of Sentences is not the Error Sentence",
        )
    return MedecPair(
        note_id=note_id,
        split=split,
        incorrect_note=row["Text"],
        correct_note=row["Corrected Text"],
        error_type=error_type,
        error_sentence_id=sentence_id,
        error_sentence=row["Error Sentence"].strip(),
        corrected_sentence=row["Corrected Sentence"].strip(),
        line=line,
    )
