"""Text that is not content: blanks, placeholders, symbol soup and looping generations.

Pure functions of one string, no I/O: the content gates (``medstore.checks.gates``), the JSON
schema patterns the local grammar enforces, and the benchmark share them. Each ``*_problem``
function returns None for acceptable text, else a short reason a repair prompt can quote.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

# Strings a model writes when it has nothing to say, or copies from a schema or template.
PLACEHOLDER_PHRASES = frozenset(
    (
        "same as above",
        "see above",
        "your text here",
        "insert text here",
        "text here",
        "description here",
        "to be determined",
        "not applicable",
        "not available",
        "fill in",
    )
)
PLACEHOLDER_TEXT = (
    "n/a na n.a none null nil undefined unknown tbd todo tba string str text value values "
    "example sample placeholder xxx xx x y z lorem ipsum etc object array number integer "
    "boolean true false item items foo bar baz abc test"
)
PLACEHOLDER_WORDS = frozenset(PLACEHOLDER_TEXT.split())
LOREM = re.compile(r"\blorem\s+ipsum\b|\bdolor\s+sit\s+amet\b", re.IGNORECASE)
TEMPLATE_SLOT = re.compile(r"^\s*(?:<[^<>]{1,40}>|\{\{?[^{}]{0,40}\}?\}|\[[^\[\]]{0,40}\])\s*$")
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
SIMPLE_WORD = re.compile(r"\w+")
LETTER_OR_DIGIT = re.compile(r"[^\W_]")
NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")

# Degenerate text: thresholds chosen so real clinical prose (dense with repeated terms such as
# "pain" or "mg") passes, while a sentence looped a few times does not.
LOOP_NGRAM = 4  # a 4-gram seen this often ...
LOOP_MIN_REPEATS = 4  # ... at least this many times, covering ...
LOOP_MIN_COVER = 0.4  # ... this share of the words, is a loop
MIN_DISTINCT_RATIO = 0.3  # distinct words / words, for texts of at least DISTINCT_MIN_WORDS
DISTINCT_MIN_WORDS = 30
MIN_WORD_CHAR_SHARE = 0.5  # letters and digits / non-space characters


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


# For ASCII text (most of it), str.translate + split does what the regexes do, several times
# faster: \w is [A-Za-z0-9_] there, and [^\W_] is [A-Za-z0-9].
ASCII = [chr(code) for code in range(128)]
ASCII_NON_WORD_TO_SPACE = str.maketrans({c: " " for c in ASCII if not (c.isalnum() or c == "_")})
ASCII_DROP_NON_ALNUM = str.maketrans({c: None for c in ASCII if not c.isalnum()})


def blank_problem(text: str) -> str | None:
    """Empty, whitespace only, or punctuation and symbols only (``"]]"``, ``"}"``, ``"..."``)."""
    if not text.strip():
        return "is blank"
    if not LETTER_OR_DIGIT.search(text):
        return f"{shorten(text)!r} is only punctuation or symbols"
    return None


def placeholder_problem(text: str, lower: str | None = None) -> str | None:
    """A placeholder instead of content: ``N/A``, ``string``, ``<text>``, lorem ipsum, ...
    (``lower``: ``text.lower()``, when the caller has it)."""
    lower = text.lower() if lower is None else lower
    plain = " ".join(lower.split()).strip(" .:;,!\"'`")  # normalise(text), stripped
    if plain in PLACEHOLDER_PHRASES or plain in PLACEHOLDER_WORDS:
        return f"{shorten(text)!r} is a placeholder, not content"
    if TEMPLATE_SLOT.match(text):
        return f"{shorten(text)!r} is a template slot, not content"
    if ("lorem" in plain or "dolor" in plain) and LOREM.search(text):  # skip most regex scans
        return "is lorem ipsum filler"
    if len(plain) > 60:  # placeholders are short
        return None
    first = WORD.search(plain)  # most texts' first word is no placeholder: no findall then
    if first is None or first.group() not in PLACEHOLDER_WORDS:
        return None
    if all(word in PLACEHOLDER_WORDS for word in WORD.findall(plain)):
        return f"{shorten(text)!r} is a placeholder, not content"
    return None


def degenerate_problem(text: str, lower: str | None = None) -> str | None:
    """Mostly symbols, a repeated n-gram loop, or too few distinct words for its length."""
    if len(text) < 8:  # too short to loop or to be mostly symbols with letters in it
        return None
    ascii_only = text.isascii()
    compact = "".join(text.split())
    if len(compact) >= 8:
        if ascii_only:
            letters = len(compact.translate(ASCII_DROP_NON_ALNUM))
        else:
            letters = len(NOT_LETTER_OR_DIGIT.sub("", compact))
        share = letters / len(compact)
        if share < MIN_WORD_CHAR_SHARE:
            return f"is mostly symbols ({share:.0%} letters or digits)"
    if ascii_only and len(text) < 2 * LOOP_NGRAM * LOOP_MIN_REPEATS - 1:
        return None  # under the 16 words a loop needs (non-ASCII can grow when lowered)
    lower = text.lower() if lower is None else lower
    if ascii_only:
        words = lower.translate(ASCII_NON_WORD_TO_SPACE).split()
    else:
        words = SIMPLE_WORD.findall(lower)
    if len(words) < LOOP_NGRAM * LOOP_MIN_REPEATS:
        return None  # too few words to loop, and fewer than DISTINCT_MIN_WORDS
    # One count of the words serves both checks: the distinct-word ratio, and whether a loop
    # is possible at all (an n-gram repeats no more often than its first word does).
    counts = Counter(words)
    if could_loop(max(counts.values()), len(words)):
        loop = repeated_ngram(words)
        if loop is not None:
            gram, repeats = loop
            return f"loops: {' '.join(gram)!r} repeats {repeats} times"
    if len(words) >= DISTINCT_MIN_WORDS:
        ratio = len(counts) / len(words)
        if ratio < MIN_DISTINCT_RATIO:
            return f"repeats itself: {ratio:.0%} distinct words (at least {MIN_DISTINCT_RATIO:.0%})"
    return None


def could_loop(repeats: int, words: int, n: int = LOOP_NGRAM) -> bool:
    """Whether an n-gram seen ``repeats`` times in ``words`` words is a loop: the test of
    ``repeated_ngram``, also asked first of the commonest word's count."""
    return repeats >= LOOP_MIN_REPEATS and repeats * n / words >= LOOP_MIN_COVER


def repeated_ngram(words: list[str], n: int = LOOP_NGRAM) -> tuple[tuple[str, ...], int] | None:
    """The most repeated n-gram when it repeats ``LOOP_MIN_REPEATS`` times and its repeats
    cover ``LOOP_MIN_COVER`` of the text; else None."""
    if len(words) < n * LOOP_MIN_REPEATS:
        return None
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, repeats = counts.most_common(1)[0]
    if could_loop(repeats, len(words), n):
        return gram, repeats
    return None


def text_problem(text: str) -> tuple[str, str] | None:
    """The first (gate, reason) that ``text`` fails, in the order blank, placeholder,
    degenerate; None when it passes all three. Short strings (list items, names, vital signs)
    repeat across samples, so their answers are cached."""
    if len(text) <= SHORT:
        return short_text_problem(text)
    return checked_text_problem(text)


SHORT = 80


@lru_cache(maxsize=100_000)
def short_text_problem(text: str) -> tuple[str, str] | None:
    return checked_text_problem(text)


def checked_text_problem(text: str) -> tuple[str, str] | None:
    reason = blank_problem(text)
    if reason is not None:
        return "blank", reason
    lower = text.lower()  # lowered once for the placeholder and degenerate checks
    reason = placeholder_problem(text, lower)
    if reason is not None:
        return "placeholder", reason
    reason = degenerate_problem(text, lower)
    if reason is not None:
        return "degenerate", reason
    return None


def shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
