"""Entity preservation: what a paraphrase of a correct note must keep, and what it may change."""

from __future__ import annotations

import pytest

from medstore.checks.entities import (
    changed_terms,
    check_preservation,
    extract_entities,
    mentions_any,
    repair_mojibake,
    sentence_similarity,
)
from medstore.sources.medec import MedecNote, MedecPair, read_medec

from .teachers_medec import paraphrase
from .test_medec_source import VALIDATION, needs_medec

NOTE = (
    "A 58-year-old man with type 2 diabetes mellitus comes for follow-up. He takes metformin "
    "500 mg orally twice daily and lisinopril 10 mg daily. Serum creatinine is 1.1 mg/dL and "
    "blood pressure is 142/88 mm Hg. He was given intravenous ceftriaxone 1 g every 24 hours "
    "for community-acquired pneumonia."
)
GOOD = (
    "Follow-up visit of a 58-year-old man who has type 2 diabetes mellitus. Metformin 500 mg is "
    "taken orally twice daily, with lisinopril 10 mg daily. Creatinine: 1.1 mg/dL; BP 142/88 "
    "mmHg. For community-acquired pneumonia he received ceftriaxone 1 g intravenously every 24 "
    "hours."
)


def by_kind(text: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for entity in extract_entities(text):
        found.setdefault(entity.kind, []).append(entity)
    return found


def test_extracts_values_medications_and_diagnoses() -> None:
    found = by_kind(NOTE)
    assert {e.key for e in found["value"]} >= {
        "58 year",
        "500 mg",
        "10 mg",
        "1.1 mg/dl",
        "142/88 mmhg",
        "1 g",
        "24 hour",
    }
    medications = {e.key: (e.dose, e.route, e.frequency) for e in found["medication"]}
    assert medications == {
        "metformin": ("500 mg", "oral", "bid"),
        "lisinopril": ("10 mg", None, "daily"),
        "ceftriaxone": ("1 g", "iv", "q24h"),
    }
    assert {e.key for e in found["diagnosis"]} == {"diabetes", "community-acquired pneumonia"}


def test_a_faithful_paraphrase_keeps_everything() -> None:
    check = check_preservation(NOTE, GOOD)
    assert check.score == 1.0 and not check.invented
    assert check.errors(0.9) == []
    assert check.edit_ratio > 0.3


@pytest.mark.parametrize(
    ("rewrite", "expected"),
    [
        (GOOD.replace("Metformin 500 mg is taken", "Metformin is taken"), "dose 500 mg"),
        (GOOD.replace("orally twice daily", "orally daily"), "frequency bid"),
        (GOOD.replace("intravenously", "by mouth"), "route iv"),
        (GOOD.replace(", with lisinopril 10 mg daily", ""), "missing medication: lisinopril"),
        (GOOD.replace("1.1 mg/dL", "1.4 mg/dL"), "missing value: '1.1 mg/dL'"),
        (GOOD.replace("142/88", "124/88"), "value not in the original note: 124/88 mmHg"),
    ],
)
def test_a_lost_or_changed_fact_is_an_error(rewrite: str, expected: str) -> None:
    errors = check_preservation(NOTE, rewrite).errors(0.5)
    assert any(expected in line for line in errors), errors


def test_diagnoses_are_fuzzy_and_only_count_towards_the_score() -> None:
    rewrite = GOOD.replace("community-acquired pneumonia", "a chest infection")
    check = check_preservation(NOTE, rewrite)
    assert [what for _, what in check.missing] == ["'community-acquired pneumonia'"]
    assert check.errors(0.9) == []  # 1 of 12 lost: score 0.92
    assert "entity preservation" in check.errors(0.95)[-1]


def test_units_and_number_words_have_one_spelling() -> None:
    note = "She is 24 years old, has had fever for one week and drinks 2–3 cups of coffee."
    rewrite = "A 24-year-old with 1 week of fever; she drinks 2-3 cups of coffee."
    assert check_preservation(note, rewrite).errors(1.0) == []


def test_mojibake_is_repaired_for_matching() -> None:
    assert repair_mojibake("MCV 85 Î¼m3, drinks 3â€“4 glasses") == "MCV 85 μm3, drinks 3–4 glasses"
    check = check_preservation("MCV is 85 Î¼m3.", "The MCV measures 85 µm3.")
    assert check.score == 1.0 and not check.invented


def test_sentence_matching() -> None:
    actual = "Culture tests indicate Neisseria gonorrhoeae."
    assert sentence_similarity("Culture tests indicate Neisseria gonorrhoeae", actual) >= 95
    assert sentence_similarity("Her pulse is 106/min.", actual) < 60
    assert changed_terms(actual, "Culture tests indicate Trichomonas vaginalis.") == [
        "trichomonas",
        "vaginalis",
    ]
    assert mentions_any("caused by trichomonas", ["trichomonas", "vaginalis"])
    assert not mentions_any("caused by gonorrhoea", ["trichomonas"])


@needs_medec
def test_the_scripted_paraphrase_keeps_every_medec_note_intact() -> None:
    notes = []
    for item in read_medec(VALIDATION):
        if isinstance(item, MedecPair):
            notes += [item.correct_note, item.incorrect_note]
        elif isinstance(item, MedecNote):
            notes.append(item.note)
    for note in notes:
        check = check_preservation(note, paraphrase(note))
        assert check.score == 1.0 and not check.invented and check.edit_ratio > 0.3, note[:80]
