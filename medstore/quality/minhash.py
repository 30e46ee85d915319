"""MinHash signatures of word-shingle sets, and near-duplicate clusters by datasketch's LSH.

Signatures are computed in numpy for many texts at once (the affine permutations
``a*h + b mod 2^61-1`` over 32-bit shingle hashes, datasketch's "affine64" scheme in spirit),
then handed to ``datasketch.MinHashLSH`` as ``LeanMinHash`` objects: datasketch picks the
bands and rows for the Jaccard threshold and buckets the signatures. Candidates that share a
bucket are kept as an edge only when their estimated Jaccard similarity reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medstore.quality.texts import ngram_hashes

if TYPE_CHECKING:
    from datasketch import LeanMinHash, MinHashLSH

PRIME = np.uint64((1 << 61) - 1)
LOW32 = np.uint64(0xFFFFFFFF)
CHUNK_SHINGLES = 200_000  # shingles per numpy pass: (shingles x permutations) uint64 at most


class Signer:
    """MinHash signatures with ``num_perm`` seeded permutations over word ``shingle``-grams."""

    def __init__(self, num_perm: int = 128, shingle: int = 3, seed: int = 1) -> None:
        rng = np.random.RandomState(seed)
        self.num_perm = num_perm
        self.shingle = shingle
        self.a = rng.randint(1, 1 << 32, num_perm, dtype=np.uint64)
        self.b = rng.randint(0, 1 << 32, num_perm, dtype=np.uint64)

    def shingles(self, word_ids: np.ndarray) -> np.ndarray:
        n = min(self.shingle, max(len(word_ids), 1))
        grams = ngram_hashes(word_ids, n) if len(word_ids) else np.zeros(1, dtype=np.uint64)
        return np.unique(grams >> np.uint64(32) ^ (grams & LOW32))

    def signatures(self, texts_word_ids: Sequence[np.ndarray]) -> np.ndarray:
        """One signature row per text (an empty text gets the signature of one blank shingle)."""
        out = np.empty((len(texts_word_ids), self.num_perm), dtype=np.uint64)
        start = 0
        while start < len(texts_word_ids):
            stop, total, sets = start, 0, []
            while stop < len(texts_word_ids) and (total < CHUNK_SHINGLES or stop == start):
                sets.append(self.shingles(texts_word_ids[stop]))
                total += len(sets[-1])
                stop += 1
            flat = np.concatenate(sets)
            offsets = np.cumsum([0, *(len(s) for s in sets[:-1])])
            permuted = (flat[:, None] * self.a + self.b) % PRIME  # < 2^64: a, h < 2^32
            out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=0)
            start = stop
        return out


def similarity(signatures: np.ndarray, i: int, j: int) -> float:
    """Estimated Jaccard similarity of two rows."""
    return float(np.mean(signatures[i] == signatures[j]))


def build_lsh(signatures: np.ndarray, threshold: float) -> MinHashLSH:
    """datasketch's LSH over every row (its key: the row number)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=signatures.shape[1])
    with lsh.insertion_session() as session:
        for row, values in enumerate(signatures):
            session.insert(row, lean(values))
    return lsh


def lean(values: np.ndarray) -> LeanMinHash:
    from datasketch import LeanMinHash

    return LeanMinHash(seed=1, hashvalues=values, scheme="affine64")


def lsh_edges(
    lsh: MinHashLSH, signatures: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    """Pairs of rows (i < j) whose estimated Jaccard similarity is at least ``threshold``."""
    seen: set[tuple[int, int]] = set()
    edges = []
    # The buckets themselves: rows sharing one are candidates (no query per row needed).
    for table in lsh.hashtables:
        for bucket in table.keys():  # noqa: SIM118 (a datasketch storage, not a dict)
            members = sorted(table.get(bucket))
            for index, first in enumerate(members):
                for second in members[index + 1 :]:
                    if (first, second) in seen:
                        continue
                    seen.add((first, second))
                    score = similarity(signatures, first, second)
                    if score >= threshold:
                        edges.append((first, second, score))
    return edges


def match_against(
    lsh: MinHashLSH, signatures: np.ndarray, others: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    """(row, other row, similarity) for rows near a row of ``others``: the few ``others`` (an
    eval set) are looked up in the LSH of the many rows."""
    found = []
    for other, values in enumerate(others):
        for row in lsh.query(lean(values)):
            score = float(np.mean(signatures[row] == values))
            if score >= threshold:
                found.append((row, other, score))
    return found
