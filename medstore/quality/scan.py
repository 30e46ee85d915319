"""A quality scan: near-duplicate clusters and contamination over a recipe's dataset, recorded
as one ``quality_scan`` event whose flags the ``quality_flags`` view reads.

When it runs: at the end of every `run` (over the recipe's whole dataset), in `revalidate`
(after the new verdicts), and in `export` whenever the latest scan is stale (the dataset's
samples, the evaluation files or the settings changed since), with the settings of the latest
scan. So an export is never deduplicated against an outdated dataset.

Clusters: MinHash over word 3-gram shingles, datasketch's LSH at a Jaccard threshold (0.8) and
optionally semantic neighbours (cosine >= 0.95 with the embedded MiniLM). Of each cluster the
earliest accepted sample is kept; the others are flagged. Contamination: any 13-gram shared
with an evaluation document, or a near-duplicate (MinHash) of one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from medstore.quality import contamination, minhash, semantic
from medstore.quality.eval_sets import EvalSet, load_eval_set, medec_test_path
from medstore.quality.options import ScanOptions
from medstore.quality.texts import Vocabulary, sample_text
from medstore.warehouse.events import Envelope, QualityScan
from medstore.warehouse.hashing import canonical_json, short_hash

if TYPE_CHECKING:
    from medstore.recipes.base import Recipe
    from medstore.warehouse.store import Warehouse

SCANNER_CODE = "1"  # bump when the scan's rules change (its verdicts then differ)
DUPLICATE_KINDS = ("near_duplicate", "semantic_duplicate")


@dataclass
class ScanResult:
    recipe: str
    samples: int
    clusters: int
    duplicates: int
    contaminated: int
    seconds: float
    event_id: str | None = None
    notes: list[str] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"quality scan of {self.recipe}: {self.samples} samples, {self.clusters} "
            f"near-duplicate clusters ({self.duplicates} duplicates left out of exports), "
            f"{self.contaminated} "
            f"contaminated by evaluation data, {self.seconds:.1f} s"
            + "".join(f"; {note}" for note in self.notes)
        )


def eval_sets(options: ScanOptions) -> tuple[list[EvalSet], list[str]]:
    """The evaluation data to check against, and a note for a default that is missing."""
    sets, notes = [], []
    if options.medec_test:
        path = medec_test_path()
        if path.exists():
            sets.append(load_eval_set(path, "medec-test"))
        else:
            notes.append(f"no MEDEC test split at {path} (set MEDSTORE_MEDEC_DIR)")
    sets.extend(load_eval_set(path) for path in options.against)
    return sets, notes


def scanner_version(options: ScanOptions, sets: list[EvalSet]) -> str:
    return "qs-" + short_hash(
        canonical_json(
            {
                "code": SCANNER_CODE,
                "options": options.model_dump(mode="json", exclude={"against"}),
                "eval_sets": sorted(s.sha256 for s in sets),
            }
        ),
        12,
    )


def sample_set_hash(sample_ids: list[str]) -> str:
    return short_hash("\n".join(sample_ids), 16)


def scan_recipe(
    warehouse: Warehouse, recipe: Recipe, options: ScanOptions | None = None
) -> ScanResult:
    """Scan a recipe's dataset and record the verdicts as a ``quality_scan`` event."""
    options = options or ScanOptions()
    started = time.perf_counter()
    sets, notes = eval_sets(options)
    rows = warehouse.select("quality_samples", recipe=recipe.name)
    ids = [row["sample_id"] for row in rows]
    samples = [orjson.loads(row["sample_json"]) for row in rows]
    texts = [sample_text(sample, recipe.volatile_fields) for sample in samples]
    groups = [
        recipe.group_key(row["task_key"], sample) for row, sample in zip(rows, samples, strict=True)
    ]
    flags = find_flags(ids, texts, sets, options, groups)
    result = ScanResult(
        recipe.name,
        len(ids),
        clusters=len({f["cluster_id"] for f in flags if f["kind"] in DUPLICATE_KINDS}),
        duplicates=len({f["sample_id"] for f in flags if f["kind"] in DUPLICATE_KINDS}),
        contaminated=len({f["sample_id"] for f in flags if f["kind"] == "contaminated"}),
        seconds=round(time.perf_counter() - started, 3),
        notes=notes,
        flags=flags,
    )
    event = QualityScan(
        scanner_version=scanner_version(options, sets),
        settings=options.model_dump(mode="json"),
        eval_sets=[s.describe() for s in sets],
        samples=result.samples,
        sample_set_hash=sample_set_hash(ids),
        clusters=result.clusters,
        duplicates=result.duplicates,
        contaminated=result.contaminated,
        seconds=result.seconds,
        notes=notes,
        flags=canonical_json(flags),
    )
    # No run id: a scan is not a run (run_totals and status count runs).
    [record] = warehouse.append([(event, Envelope(recipe=recipe.name))])
    result.event_id = record.event_id
    return result


def find_flags(
    ids: list[str],
    texts: list[str],
    sets: list[EvalSet],
    options: ScanOptions,
    groups: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The flags of one scan: duplicates (all but the first of each cluster) and contaminated
    samples (the evaluation document matched). Samples of one group (``groups``: the recipe's
    group keys, e.g. the four medec-cot views of one note) are variations by design and never
    cluster with each other."""
    vocabulary = Vocabulary()
    word_ids = vocabulary.many_word_ids(texts)
    signer = minhash.Signer(options.num_perm, options.shingle)
    signatures = signer.signatures(word_ids)
    found = minhash.lsh_edges(signatures, options.dedup_threshold)
    edges = {(i, j): ("near_duplicate", score) for i, j, score in found}
    if options.semantic and len(ids) > 1:
        vectors = semantic.embed(texts)
        for i, j, score in semantic.semantic_edges(vectors, options.semantic_threshold):
            edges.setdefault((i, j), ("semantic_duplicate", score))
    if groups is not None:
        edges = {pair: edge for pair, edge in edges.items() if groups[pair[0]] != groups[pair[1]]}
    flags = duplicate_flags(ids, edges)
    documents = [(s.name, d) for s in sets for d in s.documents]
    if documents and len(ids):
        index, document_signatures = prepared_eval(documents, vocabulary, signer, options.ngram)
        hits = contamination.overlaps(index, word_ids)
        near = minhash.match_against(signatures, document_signatures, options.dedup_threshold)
        flags += contamination_flags(ids, documents, hits, near)
    return flags


def duplicate_flags(
    ids: list[str], edges: dict[tuple[int, int], tuple[str, float]]
) -> list[dict[str, Any]]:
    """Union the edges into clusters; the lowest row (earliest accepted) represents each."""
    parent = list(range(len(ids)))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    for first, second in edges:
        a, b = root(first), root(second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    best: dict[int, tuple[str, float]] = {}
    for (first, second), (kind, score) in edges.items():
        for row in (first, second):
            if row not in best or (kind, score) > best[row]:
                best[row] = (kind, score)
    flags = []
    for row in sorted(best):
        head = root(row)
        if head == row:
            continue
        kind, score = best[row]
        flags.append(
            {
                "sample_id": ids[row],
                "kind": kind,
                "cluster_id": "c-" + short_hash(ids[head], 12),
                "representative": ids[head],
                "similarity": round(score, 4),
            }
        )
    return flags


def contamination_flags(
    ids: list[str],
    documents: list[tuple[str, Any]],
    overlaps: dict[int, contamination.Overlap],
    near: list[tuple[int, int, float]],
) -> list[dict[str, Any]]:
    """One flag per contaminated sample: the document it shares the most 13-grams with (else
    the one it near-duplicates), with the overlap and the MinHash similarity."""
    hits: dict[int, dict[str, Any]] = {}
    for row, overlap in overlaps.items():
        name, document = documents[overlap.document]
        hits[row] = {"eval_set": name, "eval_id": document.eval_id,
                     "overlap_ngrams": overlap.ngrams, "similarity": None}  # fmt: skip
    for row, other, score in near:
        name, document = documents[other]
        hit = hits.setdefault(row, {"eval_set": name, "eval_id": document.eval_id,
                                    "overlap_ngrams": None, "similarity": None})  # fmt: skip
        hit["similarity"] = max(hit["similarity"] or 0.0, round(score, 4))
    return [{"sample_id": ids[row], "kind": "contaminated", **hits[row]} for row in sorted(hits)]


PREPARED: dict[tuple, tuple[contamination.NgramIndex, np.ndarray]] = {}


def prepared_eval(
    documents: list[tuple[str, Any]], vocabulary: Vocabulary, signer: minhash.Signer, ngram: int
) -> tuple[contamination.NgramIndex, np.ndarray]:
    """The evaluation documents' n-gram index and signatures, built once per process."""
    key = (
        tuple((name, document.eval_id, len(document.text)) for name, document in documents),
        ngram,
        signer.num_perm,
        signer.shingle,
    )
    if key not in PREPARED:
        document_ids = [vocabulary.word_ids(document.text) for _, document in documents]
        PREPARED[key] = (
            contamination.NgramIndex(document_ids, ngram),
            signer.signatures(document_ids),
        )
    return PREPARED[key]


def latest_scan(warehouse: Warehouse, recipe: str) -> dict[str, Any] | None:
    row = warehouse.select_one("quality_latest_scan", recipe=recipe)
    return None if row is None else {**row, "payload": orjson.loads(row["payload_json"])}


def stale_reason(warehouse: Warehouse, recipe: str) -> tuple[str | None, ScanOptions]:
    """Why the latest scan no longer describes the dataset (None: it does), and the options
    to scan with again (the latest scan's)."""
    scan = latest_scan(warehouse, recipe)
    if scan is None:
        return "never scanned", ScanOptions()
    payload = scan["payload"]
    options = ScanOptions.model_validate(payload["settings"])
    ids = [row["sample_id"] for row in warehouse.select("quality_sample_ids", recipe=recipe)]
    if sample_set_hash(ids) != payload["sample_set_hash"]:
        return "the dataset changed since the latest scan", options
    try:
        sets, _ = eval_sets(options)
    except Exception as exc:  # an --against file gone: say so, do not fail the export
        return f"its evaluation data cannot be read again ({exc})", options
    if scanner_version(options, sets) != payload["scanner_version"]:
        return "the evaluation data or the scanner changed since the latest scan", options
    return None, options


def ensure_fresh_scan(warehouse: Warehouse, recipe: Recipe) -> ScanResult | None:
    """Scan again if the latest scan is stale (see ``stale_reason``); None when it is fresh."""
    reason, options = stale_reason(warehouse, recipe.name)
    if reason is None:
        return None
    options.against = [path for path in options.against if Path(path).exists()]
    return scan_recipe(warehouse, recipe, options)
