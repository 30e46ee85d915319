"""Contamination by long n-gram overlap: a sample that shares any run of 13 words with an
evaluation document (the decontamination convention of GPT-3 and its successors) is flagged
with the document it shares the most with. Near-duplicate matches come from ``minhash``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medstore.quality.texts import ngram_hashes

NGRAM = 13


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

    def overlap(self, word_ids: np.ndarray) -> Overlap | None:
        """The document sharing the most n-grams with a text, or None when none shares one."""
        if not len(self.hashes):
            return None
        grams = ngram_hashes(word_ids, self.n)
        if not len(grams):
            return None
        places = np.searchsorted(self.hashes, grams)
        places[places == len(self.hashes)] = 0
        matched = self.hashes[places] == grams
        if not matched.any():
            return None
        owners, counts = np.unique(self.owners[places[matched]], return_counts=True)
        best = int(np.argmax(counts))
        return Overlap(int(owners[best]), int(counts[best]))
