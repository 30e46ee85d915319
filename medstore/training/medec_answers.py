"""A model's answer to a MEDEC note, in any format medstore trains, as a MEDIQA-CORR run line.

The formats:

- medec-cot critic: ``<think>…</think>`` then ``Verdict: ERROR`` / ``Error sentence: …`` /
  ``Correction: …`` (or ``Verdict: CORRECT``);
- medec-safe: ``CORRECT``, or ``INCORRECT`` / ``Error sentence: …`` / ``Correction: …``, with an
  optional ``<think>`` block before it;
- plain: a bare ``CORRECT`` / ``ERROR`` / ``INCORRECT``, or the MEDEC paper's answer form: the
  sentence id, then the corrected sentence (``5 Culture tests indicate …``).

The sentence an answer names is mapped to MEDEC's sentence id through the note's ``Sentences``
column: an exact match, else the closest sentence if it is close enough (rapidfuzz ratio ≥ 85,
the same bar the medec-cot validator sets). A whole note, or a sentence that is not in the note,
maps to no id (-1), so quoting everything earns nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medstore.training.chat import to_think_tags

THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
VERDICT_LINE = re.compile(r"verdict\s*\**\s*:?\s*\**\s*(correct|incorrect|error)\b", re.IGNORECASE)
BARE_WORD = re.compile(r"^(correct|incorrect|error)\b[\s.!:*]*$", re.IGNORECASE)
UPPER_WORD = re.compile(r"\b(CORRECT|INCORRECT|ERROR)\b")
PAPER_FORM = re.compile(r"^(\d+)\s*[|:.)]?\s+(\S.*)$")
SENTENCE_FIELD = re.compile(r"error sentence(?:\s+id)?\s*\**\s*:\s*\**\s*(.+)", re.IGNORECASE)
CORRECTION_FIELD = re.compile(
    r"(?:correction|corrected sentence)\s*\**\s*:\s*\**\s*(.+)", re.IGNORECASE
)
NUMBERED = re.compile(r"^(?:sentence\s*)?(\d+)\s*[|:.)]?\s*(.*)$", re.IGNORECASE)
DECORATION = "*_`\"'“”‘’ "
SENTENCE_MATCH = 85


@dataclass(frozen=True)
class Answer:
    verdict: str | None  # ERROR | CORRECT | None when no verdict could be read
    sentence: str | None = None  # the sentence the answer names
    sentence_id: int | None = None  # an id the answer gives itself
    correction: str | None = None
    form: str = "unparsed"  # critic | safe | plain | paper | unparsed


def answer_part(output: str) -> str:
    """What follows the reasoning: the output without its <think> block."""
    return THINK_BLOCK.sub("", to_think_tags(output)).strip()


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip(DECORATION + "#>"):
            return line.strip(DECORATION + "#>")
    return ""


def field_value(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    if not found:
        return None
    value = found.group(1).strip().strip(DECORATION)
    return value or None


def verdict_of(word: str) -> str:
    return "CORRECT" if word.upper() == "CORRECT" else "ERROR"


def parse_answer(output: str) -> Answer:
    """The verdict, the named sentence (or id) and the correction, in whichever format."""
    text = answer_part(output)
    head = first_line(text)
    found = VERDICT_LINE.search(text)
    if found:
        verdict, form = verdict_of(found.group(1)), "critic"
    elif BARE_WORD.match(head):
        word = BARE_WORD.match(head).group(1)  # type: ignore[union-attr]
        verdict, form = verdict_of(word), "safe" if word.upper() == "INCORRECT" else "plain"
    elif PAPER_FORM.match(head):
        paper = PAPER_FORM.match(head)
        assert paper is not None
        return Answer("ERROR", None, int(paper.group(1)), paper.group(2).strip(), "paper")
    elif UPPER_WORD.search(text):
        verdict, form = verdict_of(UPPER_WORD.search(text).group(1)), "plain"  # type: ignore[union-attr]
    else:
        return Answer(None)
    if verdict == "CORRECT":
        return Answer("CORRECT", form=form)
    return Answer(
        "ERROR",
        sentence=field_value(SENTENCE_FIELD, text),
        correction=field_value(CORRECTION_FIELD, text),
        form=form,
    )


def normalised(sentence: str) -> str:
    return " ".join(sentence.strip(DECORATION).split()).lower()


def sentence_id_of(answer: Answer, sentences: dict[int, str]) -> int:
    """MEDEC's id of the sentence the answer names; -1 when it names none of the note's."""
    if answer.sentence_id is not None:
        return answer.sentence_id
    if not answer.sentence:
        return -1
    candidates = [answer.sentence]
    numbered = NUMBERED.match(answer.sentence.strip(DECORATION))
    if numbered:
        if not numbered.group(2).strip(DECORATION):
            return int(numbered.group(1))  # "Error sentence: 5"
        candidates.append(numbered.group(2))
    return closest_sentence([normalised(c) for c in candidates], sentences)


def closest_sentence(named: list[str], sentences: dict[int, str]) -> int:
    from rapidfuzz import fuzz

    texts = {index: normalised(sentence) for index, sentence in sentences.items()}
    for index, text in texts.items():
        if text in named:
            return index
    best, best_score = -1, 0.0
    for index, text in sorted(texts.items()):
        score = max(fuzz.ratio(candidate, text) for candidate in named)
        if score > best_score:
            best, best_score = index, score
    return best if best_score >= SENTENCE_MATCH else -1


def one_line(text: str) -> str:
    return " ".join(text.split())


def run_line(text_id: str, answer: Answer, sentences: dict[int, str]) -> str | None:
    """The answer as ``TEXT_ID FLAG SENTENCE_ID CORRECTION``; None when it has no verdict (the
    text then has no line, which the scorer counts wrong)."""
    if answer.verdict is None:
        return None
    if answer.verdict == "CORRECT":
        return f"{text_id} 0 -1 NA"
    # A backslash would be read as a regular-expression template by the official scorer.
    correction = one_line((answer.correction or "").replace("\\", " "))
    if not re.search(r"\w", correction):
        correction = "NA"  # no correction given (a bare "." would stop the official scorer)
    return f"{text_id} 1 {sentence_id_of(answer, sentences)} {correction}"
