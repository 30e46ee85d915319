"""A sample as text to compare, its words, and their n-gram hashes (numpy, stable across runs).

Word ids are a keyed blake2b of each word (cached), so hashes, signatures and clusters are the
same in every process (Python's own ``hash`` of a string is salted per process). An n-gram's
hash is a polynomial over its word ids, computed for every window of a text at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

WORD = re.compile(r"\w+")
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial keeps every word's bits
SKIPPED_FIELDS = {"sample_id"}


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

    def word_ids(self, text: str) -> np.ndarray:
        ids = self.ids
        out = []
        for word in WORD.findall(text.lower()):
            found = ids.get(word)
            if found is None:
                digest = hashlib.blake2b(word.encode(), digest_size=8, key=b"medstore-words")
                found = ids[word] = int.from_bytes(digest.digest(), "little")
            out.append(found)
        return np.array(out, dtype=np.uint64)


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
