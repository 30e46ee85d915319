"""Does an ICD-10-CM code's official title match the diagnosis it is attached to?

The titles come from the CMS tabular list that simple-icd-10-cm ships (each code's description,
its inclusion terms, and those of its parents up to the three-character category), read once
per process (about 0.3 s) without importing the package. A diagnosis matches a code when enough
of its content words are found, fuzzily (rapidfuzz), among the words of those titles, and none
of them contradicts the code's own title (acute/chronic, left/right, type 1/type 2).
Abbreviations ("GERD", "UTI") and a few lay terms ("heart attack") are expanded first.

``MATCH_THRESHOLD`` was measured on ``tests/data/icd_match_pairs.csv`` (121 hand-labelled
pairs) by ``tests/test_icd_match.py``, which also asserts the precision and recall quoted in
the README.
"""

from __future__ import annotations

import html
import re
from functools import cache, lru_cache

from rapidfuzz import fuzz, process

from medstore.checks.icd10 import code_list_file, is_icd10_code

MATCH_THRESHOLD = 0.3  # share of the diagnosis' content words found in the code's titles
WORD_SIMILARITY = 90  # rapidfuzz ratio at which two words are the same word (spelling variants)

NAME = re.compile(r"<name>([^<]+)</name>")
DESC = re.compile(r"<desc>([^<]*)</desc>")
NOTE = re.compile(r"<note>([^<]*)</note>")
TOKEN = re.compile(r"[a-z0-9]+")

# Words every ICD title is full of, that say nothing about which condition it is.
GENERIC_TEXT = """
    a an and as at by due for from in is nos not of on or other others site specified the to
    unspecified with without disease diseases disorder disorders syndrome condition conditions
    initial encounter subsequent sequela episode type
"""
GENERIC = frozenset(GENERIC_TEXT.split())
# Pairs of words that, one in the diagnosis and the other in the code's title, contradict.
OPPOSITES = (
    ("acute", "chronic"),
    ("left", "right"),
    ("benign", "malignant"),
    ("upper", "lower"),
    ("primary", "secondary"),
)
SPELLING = (
    (r"oesophag", "esophag"),
    (r"oedem", "edem"),
    (r"haem", "hem"),
    (r"anaem", "anem"),
    (r"ischaem", "ischem"),
    (r"paed", "ped"),
    (r"aetiol", "etiol"),
    (r"tumour", "tumor"),
    (r"isation", "ization"),
    (r"\b(generali|locali|organi)s", r"\1z"),
)
ABBREVIATIONS = {
    "acs": "acute coronary syndrome",
    "af": "atrial fibrillation",
    "afib": "atrial fibrillation",
    "aki": "acute kidney injury",
    "aom": "acute otitis media",
    "ards": "acute respiratory distress syndrome",
    "bph": "benign prostatic hyperplasia",
    "cap": "community acquired pneumonia",
    "chf": "congestive heart failure",
    "ckd": "chronic kidney disease",
    "copd": "chronic obstructive pulmonary disease",
    "cva": "cerebral infarction stroke",
    "dka": "diabetic ketoacidosis",
    "dvt": "deep vein thrombosis",
    "gad": "generalized anxiety disorder",
    "gerd": "gastro esophageal reflux disease",
    "gord": "gastro esophageal reflux disease",
    "hf": "heart failure",
    "htn": "hypertension",
    "ibs": "irritable bowel syndrome",
    "mdd": "major depressive disorder",
    "mi": "myocardial infarction",
    "ms": "multiple sclerosis",
    "osa": "obstructive sleep apnea",
    "pe": "pulmonary embolism",
    "sah": "subarachnoid hemorrhage",
    "svt": "supraventricular tachycardia",
    "t1dm": "type 1 diabetes mellitus",
    "t2dm": "type 2 diabetes mellitus",
    "uti": "urinary tract infection",
    "urti": "upper respiratory infection",
    "adhd": "attention deficit hyperactivity disorder",
}
LAY_TERMS = (
    (r"\bheart attack\b", "myocardial infarction"),
    (r"\bleg\b", "lower limb extremity"),
    (r"\barm\b", "upper limb extremity"),
    (r"\bkidney stones?\b", "calculus of kidney"),
    (r"\bblood clot\b", "thrombosis"),
    (r"\bdiabetic\b", "diabetes"),
    (r"\baortic\b", "aorta"),
    (r"\brenal\b", "kidney"),
)


@cache
def titles() -> dict[str, tuple[str, ...]]:
    """Every described code (without its dot) → its description and inclusion terms."""
    tabular = next(code_list_file().parent.glob("icd10*tabular*.xml"), None)
    if tabular is None:
        raise RuntimeError(f"{code_list_file().parent}: no ICD-10-CM tabular list found")
    found: dict[str, list[str]] = {}
    code = None
    in_inclusion = False
    with tabular.open(encoding="utf-8") as lines:
        for line in lines:
            if (name := NAME.search(line)) is not None:
                code = name.group(1).replace(".", "")
                found[code] = []
                in_inclusion = False
            elif code is not None and (desc := DESC.search(line)) is not None and not found[code]:
                found[code].append(html.unescape(desc.group(1)))
            elif "<inclusionTerm>" in line:
                in_inclusion = True
            elif "</inclusionTerm>" in line:
                in_inclusion = False
            elif in_inclusion and code is not None and (note := NOTE.search(line)) is not None:
                found[code].append(html.unescape(note.group(1)))
    return {code: tuple(texts) for code, texts in found.items() if texts}


def code_titles(code: str) -> list[str]:
    """The titles of ``code`` and of its parents down to the category, most specific first."""
    plain = code.strip().upper().replace(".", "")
    table = titles()
    sizes = range(len(plain), min(len(plain), 4) - 1, -1)  # the code, its parents, not the category
    return [text for size in sizes for text in table.get(plain[:size], ())]


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    plain = text.lower().replace("'s", "").replace("-", " ")
    for pattern, replacement in SPELLING:
        plain = re.sub(pattern, replacement, plain)
    for pattern, replacement in LAY_TERMS:
        plain = re.sub(pattern, replacement, plain)
    words = [ABBREVIATIONS.get(word, word) for word in TOKEN.findall(plain)]
    return " ".join(words)


def content_words(text: str) -> list[str]:
    return [stem(word) for word in normalise(text).split() if word not in GENERIC]


@lru_cache(maxsize=65536)
def diagnosis_words(diagnosis: str) -> tuple[str, ...]:
    """``content_words`` of a diagnosis, cached: teachers name the same conditions again."""
    return tuple(content_words(diagnosis))


def stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def same_word(word: str, others: frozenset[str], long_others: tuple[str, ...] = ()) -> bool:
    """``word`` is in ``others``, or a spelling variant of one (never hypo- for hyper-).
    ``long_others``: the words of ``others`` of five letters or more, when the caller has them."""
    if word in others:
        return True
    if len(word) < 5:
        return False
    candidates = long_others or tuple(other for other in others if len(other) >= 5)
    # All the candidates at WORD_SIMILARITY or more, scored in one call (C), then the prefixes.
    return any(
        other.startswith("hyper") == word.startswith("hyper")
        and other.startswith("hypo") == word.startswith("hypo")
        for other, _, _ in process.extract(
            word, candidates, scorer=fuzz.ratio, score_cutoff=WORD_SIMILARITY, limit=None
        )
    )


@lru_cache(maxsize=65536)
def code_words(code: str) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """The content words of a code's own title, of all its titles, and those of the latter of
    five letters or more (the fuzzy match's candidates); empty: not a code."""
    texts = code_titles(code) if is_icd10_code(code) else []
    if not texts:
        return frozenset(), frozenset(), ()
    own = frozenset(content_words(texts[0]))
    vocabulary = frozenset(word for text in texts for word in content_words(text))
    return own, vocabulary, tuple(sorted(word for word in vocabulary if len(word) >= 5))


def match_score(diagnosis: str, code: str) -> float | None:
    """Share (0-1) of the diagnosis' content words found among the code's title words, 0 on a
    contradiction; None when the code has no title (not a code) or the diagnosis no words."""
    own, vocabulary, long_words = code_words(code.strip())
    wanted = diagnosis_words(diagnosis)
    if not vocabulary or not wanted:
        return None
    for one, other in OPPOSITES:
        for mine, theirs in ((one, other), (other, one)):
            if mine in wanted and theirs in own and mine not in own:
                return 0.0
    numbers = {w for w in wanted if w.isdigit()}
    own_numbers = {w for w in own if w.isdigit()}
    if numbers and own_numbers and not numbers & own_numbers:
        return 0.0
    found = sum(same_word(word, vocabulary, long_words) for word in wanted)
    return round(found / len(wanted), 4)


def icd_mismatch(diagnosis: str, code: str, threshold: float = MATCH_THRESHOLD) -> str | None:
    """Why ``code`` does not fit ``diagnosis`` (with the code's official title); None when it
    fits, or when the code has no title (a code that does not exist is another check's)."""
    score = match_score(diagnosis, code)
    if score is None or score >= threshold:
        return None
    return (
        f"{code} is {code_titles(code)[0]!r}, which does not match {diagnosis!r}; "
        "give the code of this diagnosis"
    )
