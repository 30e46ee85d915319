"""MinHash signatures of word-shingle sets, and near-duplicate candidates by LSH banding.

Signatures are computed in numpy for many texts at once (see ``Signer``). datasketch chooses
the LSH bands and rows for the Jaccard threshold (``bands_and_rows``, the split its
``MinHashLSH`` would use); the banding itself is vectorised here, because datasketch's
``insert`` costs tens of microseconds a key in Python (seconds per 100,000 samples; see
benchmarks/bench_quality.py). Candidates that share a bucket are kept as an edge only when their
estimated Jaccard similarity reaches the threshold. tests/test_dedup_contamination.py checks the
edges against datasketch's own LSH.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from medstore.quality.texts import windows

LOW32 = np.uint64(0xFFFFFFFF)
MIX = np.uint64(0x9E3779B97F4A7C15)
CHUNK_SHINGLES = 150_000  # shingles per numpy pass: a (permutations x shingles) uint32 block
SCHEME = "affine32"  # datasketch's name for the permutations below


class Signer:
    """MinHash signatures with ``num_perm`` seeded permutations over word ``shingle``-grams.

    The permutations are datasketch's "affine32" scheme: ``a*h + b mod 2^32`` with an odd
    ``a`` (a bijection of 32-bit values), computed in wrapping uint32 arithmetic for many texts
    at once: no modulo by a prime, which costs numpy a division per value.
    """

    def __init__(self, num_perm: int = 128, shingle: int = 3, seed: int = 1) -> None:
        rng = np.random.RandomState(seed)
        self.num_perm = num_perm
        self.shingle = shingle
        self.a = (rng.randint(0, 1 << 31, num_perm, dtype=np.uint64) * 2 + 1).astype(np.uint32)
        self.b = rng.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)

    def signatures(self, texts_word_ids: Sequence[np.ndarray]) -> np.ndarray:
        """One signature row per text. A text's shingles are its word ``shingle``-grams (a
        shorter text: its words); repeats do not change a minimum, so no set is built."""
        out = np.empty((len(texts_word_ids), self.num_perm), dtype=np.uint32)
        a, b = self.a[:, None], self.b[:, None]
        start = 0
        while start < len(texts_word_ids):
            stop, total = start, 0
            while stop < len(texts_word_ids) and (total < CHUNK_SHINGLES or stop == start):
                total += len(texts_word_ids[stop]) + self.shingle
                stop += 1
            grams, owner = windows(list(texts_word_ids[start:stop]), self.shingle, pad=True)
            folded = ((grams >> np.uint64(32)) ^ (grams & LOW32)).astype(np.uint32)
            offsets = np.searchsorted(owner, np.arange(stop - start))
            permuted = a * folded[None, :] + b  # wraps modulo 2^32
            out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=1).T
            start = stop
        return out


def similarity(signatures: np.ndarray, i: int, j: int) -> float:
    """Estimated Jaccard similarity of two rows."""
    return float(np.mean(signatures[i] == signatures[j]))


# datasketch's answer for the default settings: asking costs a scipy import and numeric
# integration (0.3 s to 3 s); tests/test_dedup_contamination.py checks it is still the answer.
KNOWN_BANDS = {(0.8, 128): (9, 13)}


@cache
def bands_and_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's choice of LSH bands and rows for a Jaccard threshold (the split that
    minimises its weighted false-positive and false-negative probabilities)."""
    if (threshold, num_perm) in KNOWN_BANDS:
        return KNOWN_BANDS[(threshold, num_perm)]
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(texts x bands): a 64-bit hash of each band's ``rows`` values."""
    values = signatures.astype(np.uint64)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            for column in range(band * rows, (band + 1) * rows):
                keys[:, band] = keys[:, band] * MIX + values[:, column]
    return keys


def lsh_edges(signatures: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Pairs of rows (i < j) that share an LSH bucket and whose estimated Jaccard similarity
    is at least ``threshold``. Of a bucket of k rows, each is compared with the first and
    with its predecessor (not all k^2 pairs): enough to connect a cluster of copies."""
    bands, rows = bands_and_rows(threshold, signatures.shape[1])
    keys = band_keys(signatures, bands, rows)
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")
        ordered = keys[order, band]
        same = np.nonzero(ordered[1:] == ordered[:-1])[0] + 1  # positions equal to the previous
        if not len(same):
            continue
        bucket_starts = np.r_[0, np.nonzero(ordered[1:] != ordered[:-1])[0] + 1]
        firsts = bucket_starts[np.searchsorted(bucket_starts, same, side="right") - 1]
        for position, first in zip(same.tolist(), firsts.tolist(), strict=True):
            member = int(order[position])
            for other in (int(order[first]), int(order[position - 1])):
                candidates.add((min(member, other), max(member, other)))
    edges = []
    for first, second in sorted(candidates):
        score = similarity(signatures, first, second)
        if score >= threshold:
            edges.append((first, second, score))
    return edges


def match_against(
    signatures: np.ndarray, others: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    """(row, other row, similarity) for rows that share an LSH bucket with a row of ``others``
    (an eval set) and reach ``threshold``."""
    bands, rows = bands_and_rows(threshold, signatures.shape[1])
    keys, other_keys = band_keys(signatures, bands, rows), band_keys(others, bands, rows)
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        owners = {}
        for other, key in enumerate(other_keys[:, band].tolist()):
            owners.setdefault(key, []).append(other)
        hits = np.nonzero(np.isin(keys[:, band], other_keys[:, band]))[0]
        for row in hits.tolist():
            candidates.update((row, other) for other in owners[int(keys[row, band])])
    found = []
    for row, other in sorted(candidates):
        score = float(np.mean(signatures[row] == others[other]))
        if score >= threshold:
            found.append((row, other, score))
    return found
