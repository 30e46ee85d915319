"""Clinical entities a rewrite must keep: values with units, medications, diagnoses.

A paraphrase of a correct note stays correct only if its facts do. ``check_preservation``
extracts the original's entities (rule-based: unit and route vocabularies, a drug lexicon plus
drug-name suffixes, disease terms and triggers), looks for each in the rewrite, and scores the
share found. Values and medications must survive exactly (a changed lab value or a dropped dose
turns a correct note into a wrong one); diagnoses are matched fuzzily (rapidfuzz), since a
synonym or a reordered phrase is fine. Values the rewrite invents are reported too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from medstore.checks.vocabulary import (
    DIAGNOSIS_TRIGGER,
    DISEASE_PHRASE,
    DISEASE_WORD,
    DOSE_UNITS,
    DRUG_NAMES,
    DRUG_SUFFIX,
    EVERY_HOURS,
    FREQUENCIES,
    FREQUENCY,
    LEADING_WORDS,
    NOT_DIAGNOSES,
    NUMBER_WORDS,
    ORGANISM,
    ROUTE,
    ROUTE_BEFORE,
    ROUTES,
    UNIT_SYNONYMS,
    VALUE,
)

# Kinds that must all survive; the rest only count towards the score.
STRICT_KINDS = ("value", "medication")
DIAGNOSIS_MATCH = 88  # rapidfuzz partial_ratio needed to find a diagnosis phrase


@dataclass(frozen=True)
class Entity:
    kind: str  # "value" | "medication" | "diagnosis"
    text: str  # as written in the original, for messages
    key: str  # the normalised form matched against the rewrite
    dose: str | None = None  # medications: canonical "value unit" of the dose
    route: str | None = None
    frequency: str | None = None


@dataclass
class Preservation:
    """How much of the original's content a rewrite kept."""

    total: int
    preserved: int
    missing: list[tuple[Entity, str]] = field(default_factory=list)  # (entity, what is missing)
    invented: list[str] = field(default_factory=list)  # values in the rewrite, not the original
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    edit_ratio: float = 0.0

    @property
    def score(self) -> float:
        return 1.0 if self.total == 0 else self.preserved / self.total

    def strict_missing(self) -> list[tuple[Entity, str]]:
        return [(entity, what) for entity, what in self.missing if entity.kind in STRICT_KINDS]

    def errors(self, min_score: float) -> list[str]:
        """Lines for a repair prompt: every lost entity, every invented value, the score."""
        lines = [f"missing {entity.kind}: {what}" for entity, what in self.missing]
        lines += [f"value not in the original note: {value}" for value in self.invented]
        if self.score < min_score:
            lines.append(
                f"entity preservation {self.score:.2f} is below {min_score:.2f} "
                f"({self.preserved} of {self.total} kept)"
            )
        elif not self.strict_missing() and not self.invented:
            lines = []  # only fuzzy diagnosis misses, within the tolerated share
        return lines

    def metrics(self) -> dict[str, object]:
        return {
            "score": round(self.score, 4),
            "total": self.total,
            "preserved": self.preserved,
            "by_kind": self.by_kind,
            "missing": [what for _, what in self.missing],
            "invented_values": self.invented,
            "edit_ratio": round(self.edit_ratio, 4),
        }


MOJIBAKE = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e"
    "\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]{1,3}"
)
_CP1252_BYTES = {}
for _byte in range(0x80, 0x100):
    try:
        _CP1252_BYTES[bytes([_byte]).decode("cp1252")] = _byte
    except UnicodeDecodeError:
        _CP1252_BYTES[chr(_byte)] = _byte  # the five bytes cp1252 leaves undefined


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 read as cp1252 ("Î¼g" → "µg", "3â€“4" → "3–4"), as some MEDEC rows have."""

    def fix(match: re.Match[str]) -> str:
        try:
            return bytes(_CP1252_BYTES[ch] for ch in match.group(0)).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            return match.group(0)

    return MOJIBAKE.sub(fix, text)


def normalise(text: str) -> str:
    """One spelling for matching: mojibake repaired, NFKC, dashes and micro signs unified."""
    text = unicodedata.normalize("NFKC", repair_mojibake(text))
    text = re.sub("[\u2010-\u2015\u2212]", "-", text).replace("μ", "µ")
    return " ".join(text.split())


def canonical_number(raw: str) -> str:
    raw = raw.lower().replace(",", "")
    raw = re.sub(r"\s*(-|/|to)\s*", lambda m: "-" if m.group(1) == "to" else m.group(1), raw)
    return "".join(NUMBER_WORDS.get(part, part) for part in re.split(r"([-/])", raw))


def values(text: str) -> dict[str, str]:
    """{canonical "number unit": as written} for every value in a normalised text."""
    found: dict[str, str] = {}
    for match in VALUE.finditer(text):
        number, unit = match.group(1), match.group(2)
        if not unit and not re.search(r"\d", number):
            continue  # a bare number word ("one beer") is prose, not a value
        canonical_unit = UNIT_SYNONYMS.get(unit.lower(), unit.lower()) if unit else ""
        key = f"{canonical_number(number)} {canonical_unit}".strip()
        found.setdefault(key, match.group(0).strip())
    return found


def sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text) if part]


def medications(text: str) -> list[Entity]:
    """Drug names with the dose, route and frequency written in the same sentence after them."""
    found: dict[str, Entity] = {}
    for sentence in sentences(text):
        drugs = [
            match
            for match in re.finditer(r"\b[A-Za-z][a-z-]{3,}\b", sentence)
            if match.group(0).lower() in DRUG_NAMES or DRUG_SUFFIX.fullmatch(match.group(0))
        ]
        for index, match in enumerate(drugs):
            word = match.group(0).lower()
            # A drug's details sit between its name and the next drug ("oral" may come before).
            stop = drugs[index + 1].start() if index + 1 < len(drugs) else len(sentence)
            after = sentence[match.end() : min(stop, match.end() + 80)]
            before = ROUTE_BEFORE.search(sentence[max(0, match.start() - 20) : match.start()])
            dose = next((key for key in values(after) if key.split(" ")[-1] in DOSE_UNITS), None)
            route_match = ROUTE.search(after) or before
            entity = Entity(
                "medication",
                shorten(sentence),
                word,
                dose,
                ROUTES[route_match.group(1).lower()] if route_match else None,
                first_frequency(after),
            )
            previous = found.get(word)
            if previous is None or detail_count(entity) > detail_count(previous):
                found[word] = entity
    return list(found.values())


def first_frequency(text: str) -> str | None:
    named = FREQUENCY.search(text)
    every = EVERY_HOURS.search(text)
    if named and (not every or named.start() < every.start()):
        return FREQUENCIES[named.group(1).lower()]
    return f"q{every.group(1) or every.group(2)}h" if every else None


def shorten(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def detail_count(entity: Entity) -> int:
    return sum(part is not None for part in (entity.dose, entity.route, entity.frequency))


def diagnoses(text: str) -> list[Entity]:
    """Disease terms, phrases after diagnostic triggers, and organism names."""
    phrases: dict[str, str] = {}
    candidates = [m.group(1) for m in DIAGNOSIS_TRIGGER.finditer(text)]
    candidates += [m.group(1) for m in DISEASE_PHRASE.finditer(text)]
    candidates += [m.group(0) for m in DISEASE_WORD.finditer(text)]
    candidates += [m.group(1) for m in ORGANISM.finditer(text)]
    for candidate in candidates:
        phrase = LEADING_WORDS.sub("", candidate.strip()).strip(" -'")
        key = phrase.lower()
        if len(key) < 5 or key in NOT_DIAGNOSES or re.search(r"\d", key):
            continue
        phrases.setdefault(key, phrase)
    # A phrase inside a longer one found too ("infarction" in "myocardial infarction") is one.
    keys = sorted(phrases, key=len, reverse=True)
    kept = [k for i, k in enumerate(keys) if not any(k in longer for longer in keys[:i])]
    return [Entity("diagnosis", phrases[k], k) for k in sorted(kept)]


def extract_entities(text: str) -> list[Entity]:
    normalised = normalise(text)
    found = [Entity("value", written, key) for key, written in values(normalised).items()]
    return found + medications(normalised) + diagnoses(normalised)


def edit_ratio(original: str, rewrite: str) -> float:
    """Normalised Levenshtein distance of the two texts (0 = identical, 1 = nothing shared)."""
    return Levenshtein.normalized_distance(normalise(original), normalise(rewrite))


def check_preservation(original: str, rewrite: str) -> Preservation:
    """Which of the original's entities the rewrite kept, and which values it made up."""
    rewrite_text = normalise(rewrite)
    rewrite_lower = rewrite_text.lower()
    rewrite_values = values(rewrite_text)
    rewrite_sentences = [s.lower() for s in sentences(rewrite_text)]
    entities = extract_entities(original)
    result = Preservation(total=len(entities), preserved=0)
    for entity in entities:
        what = missing_part(entity, rewrite_lower, rewrite_values, rewrite_sentences)
        counts = result.by_kind.setdefault(entity.kind, {"total": 0, "preserved": 0})
        counts["total"] += 1
        if what is None:
            result.preserved += 1
            counts["preserved"] += 1
        else:
            result.missing.append((entity, what))
    original_values = {e.key for e in entities if e.kind == "value"}
    result.invented = [
        written for key, written in rewrite_values.items() if key not in original_values
    ]
    result.edit_ratio = edit_ratio(original, rewrite)
    return result


def missing_part(
    entity: Entity, rewrite_lower: str, rewrite_values: dict[str, str], rewrite_sentences: list[str]
) -> str | None:
    """None when the rewrite keeps the entity, else a line saying what it lost."""
    if entity.kind == "value":
        return None if entity.key in rewrite_values else f"{entity.text!r}"
    if entity.kind == "diagnosis":
        found = fuzz.partial_ratio(entity.key, rewrite_lower) >= DIAGNOSIS_MATCH
        return None if found else f"{entity.text!r}"
    name = re.compile(rf"\b{re.escape(entity.key)}\b")
    naming = [s for s in rewrite_sentences if name.search(s)]
    if not naming:
        return f"{entity.key} (in {entity.text!r})"
    lost = []
    clause = " ".join(naming)
    clause_values = values(clause)
    if entity.dose and entity.dose not in clause_values:
        lost.append(f"dose {entity.dose}")
    if entity.route and not any(
        ROUTES[m.group(1).lower()] == entity.route for m in ROUTE.finditer(clause)
    ):
        lost.append(f"route {entity.route}")
    if entity.frequency and entity.frequency not in frequencies(clause):
        lost.append(f"frequency {entity.frequency}")
    return f"{entity.key}: {', '.join(lost)} (in {entity.text!r})" if lost else None


def frequencies(text: str) -> set[str]:
    named = {FREQUENCIES[m.group(1).lower()] for m in FREQUENCY.finditer(text)}
    return named | {f"q{m.group(1) or m.group(2)}h" for m in EVERY_HOURS.finditer(text)}


# Sentence matching ------------------------------------------------------------------------------
def sentence_similarity(named: str, actual: str) -> float:
    """0-100: how surely ``named`` is ``actual`` (whole, or a quoted part of at least 60%)."""
    named, actual = normalise(named).lower(), normalise(actual).lower()
    if not named or not actual:
        return 0.0
    score = fuzz.ratio(named, actual)
    if len(named) >= 0.6 * len(actual):
        score = max(score, fuzz.partial_ratio(named, actual))
    return score


def changed_terms(before: str, after: str) -> list[str]:
    """Content words of ``after`` that ``before`` lacks: what an edit of a sentence put in."""

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9][a-z0-9'-]{2,}", normalise(text).lower())

    old = set(words(before))
    return [word for word in dict.fromkeys(words(after)) if word not in old]


def mentions_any(text: str, terms: list[str], threshold: int = 85) -> bool:
    """Whether the text names at least one of the terms (fuzzily; no terms means yes)."""
    if not terms:
        return True
    lowered = normalise(text).lower()
    return any(fuzz.partial_ratio(term, lowered) >= threshold for term in terms)
