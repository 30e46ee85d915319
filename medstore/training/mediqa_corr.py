"""The MEDIQA-CORR 2024 scorer, computed as the official script computes it.

Source: abachaa/MEDIQA-CORR-2024, ``evaluation/mediqa-corr-2024-eval-script-1-acc-rouge.ipynb.py``
(and ``-2-all-metrics.py``, which adds BERTScore and BLEURT the same way). A run file has one line
per text, ``TEXT_ID ERROR_FLAG ERROR_SENTENCE_ID CORRECTED_SENTENCE`` (``0 -1 NA`` when there is
no error). What the script does, and this module with it:

- a line must match ``[a-z0-9\\-]+\\s[0-9]+\\s\\-?[0-9]+\\s.+`` once stripped; others are skipped
  ("Invalid line"), blank lines silently; a text id given twice keeps its last line;
- quotes around the correction are removed, and a flag of ``0`` makes the correction ``NA``;
- Error Flag Accuracy and Error Sentence Detection Accuracy compare the run's flag and sentence
  id with the reference's, as strings, over every reference text: a missing line is wrong;
- the ROUGE-1/2/L composites add, over every reference text, 1 when reference and run are both
  ``NA``, 0 when only one is, and otherwise the F1 of the PyPI package ``rouge``
  (``Rouge().get_scores``), then divide by the number of reference texts.

Where the script would stop (a correction made only of full stops, which ``rouge`` refuses; a
backslash escape its swapped ``re.sub`` arguments read as a template), this module names the
line instead. One deliberate difference: reference rows that are entirely empty (the released
MEDEC-MS test CSV ends with 328) are skipped. The script's pandas read keeps them as NaN rows,
which turns the flag and sentence-id columns into floats ("1.0"), so that no run line could
match; it was run on reference files without such rows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medstore.sources.medec import parse_sentences

NA = "NA"
RUN_LINE = re.compile(r"[a-z0-9\-]+\s[0-9]+\s\-?[0-9]+\s.+")
# The strings pandas.read_csv reads as NaN by default (pandas._libs.parsers.STR_NA_VALUES): the
# official script reads the reference with pandas, so a Corrected Sentence spelled so is "NA".
PANDAS_NA = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip
REFERENCE_COLUMNS = ("Text ID", "Error Flag", "Error Sentence ID", "Corrected Sentence")
METRICS = ("error_flag_accuracy", "error_sentence_accuracy", "rouge1_f", "rouge2_f", "rougeL_f")


class CorrError(Exception):
    """A reference or run file that cannot be scored: one line naming file, line and field."""


@dataclass(frozen=True)
class ReferenceText:
    """One reference text. Flag and sentence id are strings: the script compares strings."""

    text_id: str
    flag: str  # "1" or "0"
    sentence_id: str  # "-1" when there is no error
    correction: str  # "NA" when there is no error
    line: int
    text: str = ""
    sentences: dict[int, str] = field(default_factory=dict)


@dataclass
class Reference:
    path: str
    texts: dict[str, ReferenceText]  # file order of first appearance; a repeated id: its last row
    blank_rows: int = 0
    repeated_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunLine:
    text_id: str
    flag: str
    sentence_id: str
    correction: str  # quotes removed; "NA" when the flag is 0
    line: int


@dataclass
class RunFile:
    path: str
    lines: dict[str, RunLine]  # the last line of each text id
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    repeated: list[tuple[int, str]] = field(default_factory=list)  # (line number, text id)


@dataclass
class CorrScore:
    metrics: dict[str, float]  # the five MEDIQA-CORR figures (+ ROUGE means over the pairs)
    counts: dict[str, int]
    problems: list[str]  # what the official script would print or silently decide


# The reference ------------------------------------------------------------------------------------
def integer_field(value: str, where: str, column: str) -> str:
    """An integer column as the script sees it after pandas parses it: str(int(value))."""
    try:
        return str(int(value.strip()))
    except ValueError:
        raise CorrError(f"{where}: {column} {value!r} is not an integer") from None


def read_reference(path: str | Path) -> Reference:
    """Every text of a MEDEC / MEDIQA-CORR CSV with its flag, sentence id and correction."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return read_reference_rows(path, csv.reader(handle))
    except FileNotFoundError:
        raise CorrError(f"{path}: no such reference CSV") from None
    except UnicodeDecodeError as exc:
        raise CorrError(f"{path}: not a UTF-8 text file (byte {exc.start})") from exc
    except csv.Error as exc:
        raise CorrError(f"{path}: not a readable CSV file: {exc}") from exc


def read_reference_rows(path: Path, reader: Any) -> Reference:
    header = [name.strip() for name in next(reader, None) or []]
    missing = [column for column in REFERENCE_COLUMNS if column not in header]
    if missing:
        raise CorrError(f"{path}: not a MEDEC reference CSV: no column {', '.join(missing)}")
    reference = Reference(str(path), {})
    end_of_previous = reader.line_num
    for fields in reader:
        line, end_of_previous = end_of_previous + 1, reader.line_num
        if not any(value.strip() for value in fields):
            reference.blank_rows += 1
            continue
        where = f"{path}:{line}"
        if len(fields) != len(header):
            raise CorrError(f"{where}: {len(fields)} fields, expected {len(header)}")
        row = dict(zip(header, fields, strict=True))
        text_id = row["Text ID"]
        if not text_id.strip():
            raise CorrError(f"{where}: empty Text ID")
        if text_id in reference.texts:
            reference.repeated_ids.append(text_id)
        correction = row["Corrected Sentence"]
        reference.texts[text_id] = ReferenceText(
            text_id=text_id,
            flag=integer_field(row["Error Flag"], where, "Error Flag"),
            sentence_id=integer_field(row["Error Sentence ID"], where, "Error Sentence ID"),
            correction=NA if correction in PANDAS_NA else correction,
            line=line,
            text=row.get("Text", ""),
            sentences=parse_sentences(row.get("Sentences", "")),
        )
    return reference


def limited(reference: Reference, text_ids: Sequence[str]) -> Reference:
    """The reference restricted to some texts (an eval over the first N of a file)."""
    keep = set(text_ids)
    texts = {key: text for key, text in reference.texts.items() if key in keep}
    return Reference(reference.path, texts, reference.blank_rows, reference.repeated_ids)


# The run file -------------------------------------------------------------------------------------
def official_rewrite(line: str, where: str) -> str:
    """The script's ``re.sub('\\s+', line, ' ')`` has its arguments swapped: it replaces the one
    space of ``' '`` by ``line`` read as a replacement template. That is the line itself unless
    it holds a backslash; then the same call gives what the script gets, or the error it stops
    on."""
    if "\\" not in line:
        return line
    try:
        return re.sub(r"\s+", line, " ")
    except (re.error, IndexError) as exc:
        raise CorrError(
            f"{where}: the official script stops on this line (its backslash is read as a "
            f"regular-expression template: {exc})"
        ) from None


def strip_quotes(correction: str) -> str:
    while correction.startswith('"') and len(correction) > 1:
        correction = correction[1:]
    while correction.endswith('"') and len(correction) > 1:
        correction = correction[:-1]
    return correction


def parse_run_lines(text: str, path: str) -> RunFile:
    """A run file's lines, read the way the official script reads them."""
    run = RunFile(path, {})
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if not RUN_LINE.fullmatch(line):
            run.malformed.append((number, line))
            continue
        items = official_rewrite(line, f"{path}:{number}").split()
        text_id, flag, sentence_id = items[0], items[1], items[2]
        correction = strip_quotes(" ".join(items[3:]).strip())
        if text_id in run.lines:
            run.repeated.append((number, text_id))
        run.lines[text_id] = RunLine(
            text_id, flag, sentence_id, NA if flag == "0" else correction, number
        )
    return run


def read_run_file(path: str | Path) -> RunFile:
    path = Path(path)
    try:
        # Text mode with universal newlines, as the script's open(path, 'r').readlines().
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorrError(f"{path}: no such run file") from None
    except UnicodeDecodeError as exc:
        raise CorrError(f"{path}: not a UTF-8 text file (byte {exc.start})") from exc
    return parse_run_lines(text, str(path))


# Scoring ------------------------------------------------------------------------------------------
def rouge_f(prediction: str, reference: str, where: str) -> tuple[float, float, float]:
    """ROUGE-1/2/L F1 of one pair, by the ``rouge`` package the script uses."""
    from rouge import Rouge

    try:
        [scores] = Rouge().get_scores([prediction], [reference])
    except ValueError as exc:
        raise CorrError(
            f"{where}: the rouge package cannot score this correction ({exc}); the official "
            "script stops on it"
        ) from None
    return scores["rouge-1"]["f"], scores["rouge-2"]["f"], scores["rouge-l"]["f"]


def correction_scores(reference: Reference, run: RunFile) -> tuple[dict[str, float], Any]:
    """The three ROUGE composites and the NA counters, as ``get_nlg_eval_data`` + ``NLGMetrics``."""
    import numpy as np

    counts = {"reference_na": 0, "system_na": 0, "both_na": 0, "rouge_pairs": 0}
    pairs: list[tuple[float, float, float]] = []
    for text_id, truth in reference.texts.items():
        counts["reference_na"] += truth.correction == NA
        predicted = run.lines.get(text_id)
        if predicted is None:
            continue
        counts["system_na"] += predicted.correction == NA
        if truth.correction == NA and predicted.correction == NA:
            counts["both_na"] += 1
        elif NA not in (truth.correction, predicted.correction):
            where = f"{run.path}:{predicted.line}"
            pairs.append(rouge_f(predicted.correction, truth.correction, where))
    counts["rouge_pairs"] = len(pairs)
    total = len(reference.texts)
    metrics: dict[str, float] = {}
    for i, name in enumerate(("rouge1_f", "rouge2_f", "rougeL_f")):
        # One 1-D array per measure, summed as the script sums it (numpy's pairwise sum), so
        # that the figures agree to the last bit.
        values = np.array([pair[i] for pair in pairs])
        metrics[name] = float((values.sum() + counts["both_na"]) / total)
        if pairs:  # the script's "subset check": the mean over the sentence-vs-sentence pairs
            metrics[f"{name}_pairs_mean"] = float(values.mean())
    return metrics, counts


def score_run(reference: Reference, run: RunFile) -> CorrScore:
    """Error flag and sentence accuracy, and the ROUGE composites, over every reference text."""
    if not reference.texts:
        raise CorrError(f"{reference.path}: no texts to score against")
    total = len(reference.texts)
    found = [(truth, run.lines.get(text_id)) for text_id, truth in reference.texts.items()]
    flags = sum(p is not None and p.flag == t.flag for t, p in found)
    sentences = sum(p is not None and p.sentence_id == t.sentence_id for t, p in found)
    rouge, nlg_counts = correction_scores(reference, run)
    counts = {
        "texts": total,
        "predicted": sum(p is not None for _, p in found),
        "missing": sum(p is None for _, p in found),
        "unknown_ids": len(set(run.lines) - set(reference.texts)),
        "malformed_lines": len(run.malformed),
        "repeated_ids": len(run.repeated),
        "reference_blank_rows": reference.blank_rows,
        **nlg_counts,
    }
    metrics = {
        "error_flag_accuracy": flags / total,
        "error_sentence_accuracy": sentences / total,
        **rouge,
    }
    return CorrScore(metrics, counts, run_problems(reference, run))


def run_problems(reference: Reference, run: RunFile) -> list[str]:
    """What the script prints ("Invalid line") or decides without a word, by line number."""
    problems = [
        f"{run.path}:{number}: not a run line (TEXT_ID FLAG SENTENCE_ID CORRECTION), skipped: "
        f"{text[:80]!r}"
        for number, text in run.malformed
    ]
    problems += [
        f"{run.path}:{number}: {text_id} given again; this line replaces the earlier one"
        for number, text_id in run.repeated
    ]
    unknown = sorted(set(run.lines) - set(reference.texts))
    if unknown:
        problems.append(
            f"{run.path}: {len(unknown)} text id(s) not in {reference.path}, ignored: "
            f"{', '.join(unknown[:5])}"
        )
    missing = [key for key in reference.texts if key not in run.lines]
    if missing:
        problems.append(
            f"{run.path}: no line for {len(missing)} text(s), counted wrong: "
            f"{', '.join(missing[:5])}"
        )
    if reference.repeated_ids:
        problems.append(
            f"{reference.path}: Text ID(s) given twice, the last row counts: "
            f"{', '.join(reference.repeated_ids[:5])}"
        )
    return problems


def run_file_text(lines: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in lines)
