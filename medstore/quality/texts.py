"""A sample as text to compare, its words, and their n-gram hashes (numpy, stable across runs).

Word ids are a keyed blake2b of each word (cached), so hashes, signatures and clusters are the
same in every process (Python's own ``hash`` of a string is salted per process). An n-gram's
hash is a polynomial over its word ids, computed for every window of a text at once.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable
from typing import Any

import numpy as np

# Words: the lower-cased text split on whitespace and punctuation. str.translate + str.split is
# three times as fast as a regex over 100,000 samples (benchmarks/bench_quality.py).
PUNCTUATION = (
    string.punctuation.replace("_", "")
    + "\u2013\u2014\u2018\u2019\u201c\u201d\u2026\u00b7\u2022\u00b0\u00b1"
)
SPACES = str.maketrans(dict.fromkeys(PUNCTUATION, " "))


def words(text: str) -> list[str]:
    return text.lower().translate(SPACES).split()


MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial keeps every word's bits
SKIPPED_FIELDS = {"sample_id"}
SEPARATOR = "medstoretextseparator"  # between texts in ``many_word_ids``


def sample_text(value: Any, skip: Iterable[str] = ()) -> str:
    """Every string inside a sample (keys in ``skip`` left out), in field order, one per line."""
    skipped = SKIPPED_FIELDS | set(skip)
    parts: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if key not in skipped:
                    walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)

    walk(value)
    return "\n".join(parts)


class Vocabulary:
    """Stable 64-bit ids of lower-cased words, computed once per word."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def many_word_ids(self, texts: list[str]) -> list[np.ndarray]:
        """``word_ids`` of many texts with one regex pass and one lookup pass over them all
        (per-text calls cost more in overhead than in work)."""
        if not texts:
            return []
        ids = self.lookup(words(f" {SEPARATOR} ".join(texts)))
        separator = self.lookup([SEPARATOR])[0]
        parts = np.split(ids, np.nonzero(ids == separator)[0])
        return [parts[0], *(part[1:] for part in parts[1:])]

    def word_ids(self, text: str) -> np.ndarray:
        return self.lookup(words(text))

    def lookup(self, words: list[str]) -> np.ndarray:
        get = self.ids.__getitem__
        try:  # the common case, every word seen before: a loop in C
            return np.fromiter(map(get, words), dtype=np.uint64, count=len(words))
        except KeyError:
            for word in set(words).difference(self.ids):
                digest = hashlib.blake2b(word.encode(), digest_size=8, key=b"medstore-words")
                self.ids[word] = int.from_bytes(digest.digest(), "little")
            return np.fromiter(map(get, words), dtype=np.uint64, count=len(words))


def ngram_hashes(word_ids: np.ndarray, n: int) -> np.ndarray:
    """The hash of every run of ``n`` words (none for a text shorter than ``n``)."""
    count = len(word_ids) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    acc = word_ids[:count].copy()
    with np.errstate(over="ignore"):  # wrapping arithmetic modulo 2^64 is the point
        for offset in range(1, n):
            acc = acc * MULTIPLIER + word_ids[offset : offset + count]
    return acc


def windows(
    word_ids: list[np.ndarray], n: int, *, pad: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every run of ``n`` words of many texts at once, and the text each is from
    (in text order). ``pad``: every text gets at least one window (its words, completed with
    zeros), so a text shorter than ``n`` still has a shingle."""
    if pad:
        filler = np.zeros(n - 1, dtype=np.uint64)
        word_ids = [np.concatenate([ids if len(ids) else filler[:1], filler]) for ids in word_ids]
    lengths = np.fromiter(map(len, word_ids), dtype=np.int64, count=len(word_ids))
    if not len(word_ids) or lengths.sum() < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    flat = np.concatenate(word_ids)
    grams = ngram_hashes(flat, n)
    owner = np.repeat(np.arange(len(word_ids)), lengths)[: len(grams)]
    ends = np.cumsum(lengths)
    keep = np.arange(len(grams)) + n <= ends[owner]  # windows inside one text only
    return grams[keep], owner[keep]
