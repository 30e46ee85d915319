"""The gates' fast paths give the verdicts of the plain code they replaced.

``checked_text_problem`` lowers a text once, takes ``str.translate`` for ASCII text instead of
the regexes and skips the 4-gram count where no loop is possible; ``same_word`` scores the
fuzzy candidates in one rapidfuzz call. Each is compared here with the straightforward
implementation (kept below as the reference) on thousands of generated strings and words,
ASCII and not, that reach every verdict.
"""

from __future__ import annotations

import random
from collections import Counter

from rapidfuzz import fuzz

from medstore.checks import degenerate as d
from medstore.checks.icd_match import WORD_SIMILARITY, code_words, same_word, titles


def reference_text_problem(text: str) -> tuple[str, str] | None:
    """The text gates as first written: regexes throughout, every count taken."""
    if not text.strip():
        return "blank", "is blank"
    if not d.LETTER_OR_DIGIT.search(text):
        return "blank", f"{d.shorten(text)!r} is only punctuation or symbols"
    plain = d.normalise(text).strip(" .:;,!\"'`")
    if plain in d.PLACEHOLDER_PHRASES or plain in d.PLACEHOLDER_WORDS:
        return "placeholder", f"{d.shorten(text)!r} is a placeholder, not content"
    if d.TEMPLATE_SLOT.match(text):
        return "placeholder", f"{d.shorten(text)!r} is a template slot, not content"
    if d.LOREM.search(text):
        return "placeholder", "is lorem ipsum filler"
    words = d.WORD.findall(plain) if len(plain) <= 60 else ()
    if words and all(word in d.PLACEHOLDER_WORDS for word in words):
        return "placeholder", f"{d.shorten(text)!r} is a placeholder, not content"
    if len(text) < 8:
        return None
    compact = "".join(text.split())
    if len(compact) >= 8:
        share = len(d.NOT_LETTER_OR_DIGIT.sub("", compact)) / len(compact)
        if share < d.MIN_WORD_CHAR_SHARE:
            return "degenerate", f"is mostly symbols ({share:.0%} letters or digits)"
    words = d.SIMPLE_WORD.findall(text.lower())
    n = d.LOOP_NGRAM
    if len(words) >= n * d.LOOP_MIN_REPEATS:
        counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
        gram, repeats = counts.most_common(1)[0]
        if repeats >= d.LOOP_MIN_REPEATS and repeats * n / len(words) >= d.LOOP_MIN_COVER:
            return "degenerate", f"loops: {' '.join(gram)!r} repeats {repeats} times"
    if len(words) >= d.DISTINCT_MIN_WORDS:
        ratio = len(set(words)) / len(words)
        if ratio < d.MIN_DISTINCT_RATIO:
            return "degenerate", (
                f"repeats itself: {ratio:.0%} distinct words (at least {d.MIN_DISTINCT_RATIO:.0%})"
            )
    return None


CHARACTERS = [*"abcxyz ,.;!?_-'’()[]{}<>/\\\n\t0123", "İ", "ſ", "é", "ß", "١", "²", "\u0307"]
WORDS = [
    "the", "patient", "pain", "chest", "N/A", "lorem", "ipsum", "dolor", "sit", "amet",
    "string", "...", "x", "_", "foo", "]]", "TBD", "unknown", "douleur", "très", "İİ", "Na+",
]  # fmt: skip
SENTENCES = (
    "The patient is fine and the plan is fine.",
    "Take the medicine and rest at home.",
    "Le patient va très bien, merci docteur.",
    "Pain pain pain in the chest again.",
)


def generated_texts(n: int = 4000, seed: int = 19) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.35:
            texts.append("".join(rng.choice(CHARACTERS) for _ in range(rng.randint(0, 60))))
        elif kind < 0.65:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 50))))
        elif kind < 0.75:  # few words shuffled: too few distinct words, rarely a loop
            few = rng.sample(WORDS, rng.randint(3, 6))
            texts.append(" ".join(rng.choice(few) for _ in range(rng.randint(25, 60))))
        else:
            loop = " ".join([rng.choice(SENTENCES)] * rng.randint(1, 8))
            texts.append(loop + rng.choice(["", " İİ", " and then it was over", "!!!!!!!!"]))
    return texts + ["İ" * k for k in range(10, 40)] + ["_" * k for k in range(40)]


def test_text_gates_give_the_reference_verdicts() -> None:
    texts = generated_texts()
    verdicts = [d.checked_text_problem(text) for text in texts]
    assert verdicts == [reference_text_problem(text) for text in texts]
    reached = Counter(
        verdict[0] + ":" + verdict[1].split()[0] if verdict else "pass" for verdict in verdicts
    )
    # The corpus reaches every verdict, so a fast path that changed one would show here.
    for kind in ("pass", "blank:is", "degenerate:is", "degenerate:loops:", "degenerate:repeats"):
        assert reached[kind] >= 10, reached
    assert sum(n for kind, n in reached.items() if kind.startswith("placeholder")) >= 50


def reference_same_word(word: str, others: frozenset[str]) -> bool:
    if word in others:
        return True
    if len(word) < 5:
        return False
    return any(
        len(other) >= 5
        and fuzz.ratio(word, other) >= WORD_SIMILARITY
        and word.startswith("hyper") == other.startswith("hyper")
        and word.startswith("hypo") == other.startswith("hypo")
        for other in others
    )


def test_fuzzy_word_match_gives_the_reference_answers() -> None:
    rng = random.Random(7)
    codes = sorted(titles())
    checked = Counter()
    for _ in range(1500):
        _, vocabulary, long_words = code_words(rng.choice(codes))
        if not vocabulary:
            continue
        word = rng.choice(sorted(vocabulary))
        change = rng.random()
        if change < 0.3 and len(word) > 5:  # a spelling variant: one letter changed
            at = rng.randrange(len(word))
            word = word[:at] + rng.choice("aeiouxy") + word[at + 1 :]
        elif change < 0.5:
            word = rng.choice(("hypertension", "hypotension", "hyperkalemia", "hypokalemia"))
        elif change < 0.7:
            _, elsewhere, _ = code_words(rng.choice(codes))
            word = rng.choice(sorted(elsewhere)) if elsewhere else word
        found = same_word(word, vocabulary, long_words)
        assert found == reference_same_word(word, vocabulary), (word, sorted(vocabulary))
        assert same_word(word, vocabulary) == found  # without the candidates given
        checked[found] += 1
    assert checked[True] >= 200 and checked[False] >= 200, checked
