"""Contamination by long n-gram overlap: a sample that shares any run of 13 words with an
evaluation document (the decontamination convention of GPT-3 and its successors) is flagged
with the document it shares the most with. Near-duplicate matches come from ``minhash``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medstore.quality.options import NGRAM
from medstore.quality.texts import ngram_hashes, windows

CHUNK_TEXTS = 5000
FILTER_BITS = 24
FILTER_MASK = np.uint64((1 << FILTER_BITS) - 1)


@dataclass(frozen=True)
class Overlap:
    document: int  # index into the documents the index was built from
    ngrams: int  # how many of the sample's n-grams that document holds


class NgramIndex:
    """Every ``n``-gram hash of a set of documents, sorted, with the first document holding it."""

    def __init__(self, documents_word_ids: list[np.ndarray], n: int = NGRAM) -> None:
        self.n = n
        grams = [ngram_hashes(ids, n) for ids in documents_word_ids]
        owners = [np.full(len(g), i, dtype=np.int64) for i, g in enumerate(grams)]
        flat = np.concatenate(grams) if grams else np.zeros(0, dtype=np.uint64)
        owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        self.hashes, first = np.unique(flat, return_index=True)
        self.owners = owner[first]
        # A bitmap of the hashes' low bits: one lookup rules out almost every sample n-gram
        # before the binary search (which costs 17 comparisons each on the MEDEC test split).
        self.bitmap = np.zeros(1 << FILTER_BITS, dtype=bool)
        self.bitmap[self.hashes & FILTER_MASK] = True

    def candidates(self, grams: np.ndarray) -> np.ndarray:
        """Positions of ``grams`` that may be in the index (the rest surely are not)."""
        return np.nonzero(self.bitmap[grams & FILTER_MASK])[0]


def overlaps(index: NgramIndex, word_ids: list[np.ndarray]) -> dict[int, Overlap]:
    """For every text sharing an n-gram with a document: the document sharing the most (all
    texts' n-grams looked up at once, in chunks)."""
    found: dict[int, Overlap] = {}
    if not len(index.hashes):
        return found
    for start in range(0, len(word_ids), CHUNK_TEXTS):
        grams, owner = windows(word_ids[start : start + CHUNK_TEXTS], index.n)
        maybe = index.candidates(grams)
        grams, owner = grams[maybe], owner[maybe]
        places = np.searchsorted(index.hashes, grams)
        places[places == len(index.hashes)] = 0
        matched = index.hashes[places] == grams
        if not matched.any():
            continue
        pairs = np.stack([owner[matched], index.owners[places[matched]]], axis=1)
        combos, counts = np.unique(pairs, axis=0, return_counts=True)
        for (text, document), count in zip(combos.tolist(), counts.tolist(), strict=True):
            best = found.get(start + text)
            if best is None or count > best.ngrams:
                found[start + text] = Overlap(document, count)
    return found
