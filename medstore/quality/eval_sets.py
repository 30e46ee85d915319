"""Held-out evaluation data to check samples against: the MEDEC test split by default, plus
any file given with ``--against`` (a MEDEC-layout CSV, JSONL objects, or text, one document a
line). Each document keeps its own id, so a contamination hit names what it matched."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from medstore.sources.medec import (
    COLUMNS,
    MedecNote,
    MedecPair,
    default_medec_path,
    file_sha256,
    read_medec,
)

MEDEC_TEST_FILE = "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv"
ID_KEYS = ("id", "eval_id", "note_id", "Text ID")


class EvalSetError(Exception):
    """An --against file that cannot be read as evaluation data: one line."""


@dataclass(frozen=True)
class EvalDocument:
    eval_id: str
    text: str


@dataclass
class EvalSet:
    name: str
    path: str
    sha256: str
    documents: list[EvalDocument]

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "documents": len(self.documents),
        }


def medec_test_path() -> Path:
    """The MEDEC test split beside the validation split ($MEDSTORE_MEDEC_DIR or shared data)."""
    return default_medec_path().parent / MEDEC_TEST_FILE


def load_eval_set(path: str | Path, name: str | None = None) -> EvalSet:
    """An evaluation file's documents; read once per process while the file is unchanged."""
    path = Path(path)
    if not path.is_file():
        raise EvalSetError(f"{path}: no such evaluation file")
    stat = path.stat()
    return cached_eval_set(str(path.resolve()), stat.st_mtime_ns, stat.st_size, name)


@cache
def cached_eval_set(resolved: str, mtime_ns: int, size: int, name: str | None) -> EvalSet:
    path = Path(resolved)
    if path.suffix.lower() == ".csv" and is_medec_csv(path):
        documents = medec_documents(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        documents = jsonl_documents(path)
    elif path.suffix.lower() in (".txt", ".md"):
        lines = path.read_text(encoding="utf-8").splitlines()
        documents = [
            EvalDocument(f"line-{n}", line) for n, line in enumerate(lines, 1) if line.strip()
        ]
    else:
        raise EvalSetError(
            f"{path}: expected a MEDEC-layout .csv, a .jsonl of objects or a .txt (one "
            "document a line)"
        )
    return EvalSet(name or path.stem, str(path.resolve()), file_sha256(path), documents)


def is_medec_csv(path: Path) -> bool:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    return set(COLUMNS) <= set(header)


def medec_documents(path: Path) -> list[EvalDocument]:
    """Both notes of a pair (they share its id) and every correct note."""
    documents = []
    for item in read_medec(path):
        if isinstance(item, MedecPair):
            documents.append(EvalDocument(item.note_id, item.incorrect_note))
            documents.append(EvalDocument(item.note_id, item.correct_note))
        elif isinstance(item, MedecNote):
            documents.append(EvalDocument(item.note_id, item.note))
    return documents


def jsonl_documents(path: Path) -> list[EvalDocument]:
    from medstore.quality.texts import sample_text

    documents = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise EvalSetError(f"{path}:{number}: not JSON ({exc})") from exc
        eval_id = next(
            (str(value[key]) for key in ID_KEYS if isinstance(value, dict) and key in value),
            f"line-{number}",
        )
        documents.append(EvalDocument(eval_id, sample_text(value)))
    return documents
