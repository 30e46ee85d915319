"""Quality-scan benchmark: MinHash-LSH near-duplicates and the contamination scan against the
MEDEC test split over 100,000 synthetic samples, in memory and end to end from a warehouse,
with the per-sample cost as a ratio to the `hierarchical` recipe's existing validation (the
structure check every rewrite gets), measured in the same run.

Synthetic samples: ~150 words drawn from the words of the MEDEC notes (so the 13-gram index
sees realistic vocabulary), 1% planted near-copies (2 words changed) and 0.1% planted copies
of a MEDEC test sentence run (contaminated).

Run: python benchmarks/bench_quality.py [--samples 100000] [--words 150] [--semantic N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medstore.checks.structure import check_structure  # noqa: E402
from medstore.plugins import get_recipe  # noqa: E402
from medstore.quality import contamination, minhash  # noqa: E402
from medstore.quality.eval_sets import load_eval_set, medec_test_path  # noqa: E402
from medstore.quality.scan import ScanOptions, find_flags, scan_recipe  # noqa: E402
from medstore.quality.texts import Vocabulary, words  # noqa: E402
from medstore.warehouse.events import Envelope, SampleAccepted  # noqa: E402
from medstore.warehouse.hashing import canonical_json, json_hash  # noqa: E402
from medstore.warehouse.store import Warehouse  # noqa: E402


def synthetic_texts(count: int, length: int, seed: int = 1) -> tuple[list[str], int, int]:
    rng = random.Random(seed)
    notes = [d.text for d in load_eval_set(medec_test_path()).documents]
    vocabulary = sorted({w for note in notes for w in words(note)})
    texts = [" ".join(rng.choices(vocabulary, k=length)) for _ in range(count)]
    near = count // 100
    for index in rng.sample(range(count), near):
        copy = texts[rng.randrange(count)].split()
        for place in rng.sample(range(len(copy)), 2):
            copy[place] = "changed"
        texts[index] = " ".join(copy)
    leaked = count // 1000
    for index in rng.sample(range(count), leaked):
        note = rng.choice(notes).split()
        texts[index] = texts[index] + " " + " ".join(note[:20])
    return texts, near, leaked


CPU: dict[str, float] = {}  # process CPU seconds of the last ``timed`` call


def timed(fn, *args):
    """The value and the wall seconds; the CPU seconds go to CPU["last"]. On a shared, loaded
    machine the wall time counts other processes' turns, the CPU time only this one's work."""
    started, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    CPU["last"] = time.process_time() - cpu
    return value, time.perf_counter() - started


def cpu_timed(fn, *args):
    value, _ = timed(fn, *args)
    return value, CPU["last"]


def bench_stages(texts: list[str]) -> dict[str, float]:
    """The scan's steps one by one, in CPU seconds (the total is ``bench_scan``'s)."""
    vocabulary = Vocabulary()
    word_ids, tokenize_s = cpu_timed(vocabulary.many_word_ids, texts)
    signer = minhash.Signer()
    signatures, sign_s = cpu_timed(signer.signatures, word_ids)
    edges, edges_s = cpu_timed(minhash.lsh_edges, signatures, 0.8)
    documents = load_eval_set(medec_test_path()).documents
    document_ids = [vocabulary.word_ids(d.text) for d in documents]
    index, index_s = cpu_timed(contamination.NgramIndex, document_ids)
    hits, ngram_s = cpu_timed(contamination.overlaps, index, word_ids)
    near, near_s = cpu_timed(
        minhash.match_against, signatures, signer.signatures(document_ids), 0.8
    )
    return {
        "tokenize_s": tokenize_s,
        "signatures_s": sign_s,
        "lsh_banding_s": edges_s,
        "eval_index_s": index_s,
        "13gram_scan_s": ngram_s,
        "eval_near_dup_s": near_s,
        "edges": len(edges),
        "13gram_hits": len(hits),
        "eval_near_dups": len(near),
    }


def bench_datasketch_insert(signatures_count: int) -> float:
    """Seconds per key of datasketch's own MinHashLSH insert (why banding is vectorised)."""
    import numpy as np
    from datasketch import LeanMinHash, MinHashLSH

    rows = np.random.RandomState(0).randint(0, 1 << 32, (signatures_count, 128), dtype=np.uint64)
    keyed = [LeanMinHash(seed=1, hashvalues=row, scheme="affine32") for row in rows]
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    started = time.perf_counter()
    with lsh.insertion_session() as session:
        for key, value in enumerate(keyed):
            session.insert(key, value)
    return (time.perf_counter() - started) / signatures_count


def bench_scan(texts: list[str]) -> dict[str, float]:
    ids = [f"s{n}" for n in range(len(texts))]
    sets = [load_eval_set(medec_test_path(), "medec-test")]
    flags, seconds = timed(find_flags, ids, texts, sets, ScanOptions())
    return {
        "seconds": seconds,
        "cpu_seconds": CPU["last"],
        "duplicates": sum(f["kind"] == "near_duplicate" for f in flags),
        "contaminated": sum(f["kind"] == "contaminated" for f in flags),
    }


def bench_warehouse(texts: list[str]) -> dict[str, float]:
    """scan_recipe end to end: read 100k samples from a warehouse, scan, record the event."""
    recipe = get_recipe("hierarchical")()
    with tempfile.TemporaryDirectory() as folder, Warehouse(Path(folder) / "bench.db") as store:
        batch = []
        for number, text in enumerate(texts):
            sample = {"sample_id": f"s-{number}", "Doctor": text}
            event = SampleAccepted(
                sample_id=f"s-{number}",
                content_hash=json_hash(sample),
                sample=canonical_json(sample),
            )
            batch.append((event, Envelope("bench", "hierarchical", f"hierarchical:{number}")))
            if len(batch) == 5000:
                store.append(batch)
                batch = []
        store.append(batch)
        result, seconds = timed(scan_recipe, store, recipe, ScanOptions())
    return {
        "seconds": seconds,
        "cpu_seconds": CPU["last"],
        "duplicates": result.duplicates,
        "contaminated": result.contaminated,
    }


def bench_validation(rounds: int) -> float:
    """Seconds per sample of the hierarchical recipe's structure check."""
    from tests.teachers_hierarchical import good_rewrite

    source = REPO / "data" / "consultations_sample.jsonl"
    doctors = [json.loads(line)["Doctor"] for line in source.read_text().splitlines() if line]
    answers = [(good_rewrite(text), text) for text in doctors if text and text.strip()]
    started = time.process_time()  # CPU time, as the scan's figure it is compared with
    for _ in range(rounds):
        for rewrite, original in answers:
            check_structure(rewrite, original)
    return (time.process_time() - started) / (rounds * len(answers))


def bench_semantic(texts: list[str]) -> float:
    """Seconds per sample to embed with the sentence model (model load excluded)."""
    from medstore.quality import semantic

    semantic.embed(texts[:8])  # load the model
    started = time.perf_counter()
    semantic.embed(texts)
    return (time.perf_counter() - started) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument(
        "--semantic", type=int, default=0, metavar="N", help="Also time embedding N samples."
    )
    args = parser.parse_args()
    if not medec_test_path().exists():
        sys.exit(f"no MEDEC test split at {medec_test_path()} (set MEDSTORE_MEDEC_DIR)")
    texts, near, leaked = synthetic_texts(args.samples, args.words)
    print(
        f"{args.samples:,} synthetic samples of {args.words} words: {near:,} planted near-copies,"
        f" {leaked:,} planted MEDEC test passages; uptime: {os.popen('uptime').read().strip()}"
    )
    tenth = len(texts) // 10
    stages = bench_stages(texts[:tenth])  # the steps one by one, on a tenth
    print(
        f"stages on {tenth:,} samples (CPU s): "
        + ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in stages.items()
        )
    )
    scan = bench_scan(texts)
    print(
        f"dedup + contamination (in memory): {scan['seconds']:.1f} s wall, "
        f"{scan['cpu_seconds']:.1f} s CPU for {args.samples:,} samples (target < 60 s): "
        f"{scan['duplicates']:,} duplicates, {scan['contaminated']:,} contaminated"
    )
    stored = bench_warehouse(texts)
    print(
        f"scan_recipe from a warehouse (read + scan + event): {stored['seconds']:.1f} s wall, "
        f"{stored['cpu_seconds']:.1f} s CPU "
        f"({stored['duplicates']:,} duplicates, {stored['contaminated']:,} contaminated)"
    )
    insert = bench_datasketch_insert(10_000)
    print(
        f"datasketch MinHashLSH insert: {insert * 1e6:.0f} us a key, "
        f"{insert * args.samples:.1f} s for {args.samples:,}; the vectorised banding: "
        f"{stages['lsh_banding_s'] / tenth * 1e6:.0f} us a sample"
    )
    if args.semantic:
        embedding = bench_semantic(texts[: args.semantic])
        print(f"--semantic: {embedding * 1000:.1f} ms a sample to embed (MiniLM on the CPU)")
    per_sample = scan["cpu_seconds"] / args.samples
    validation = bench_validation(20)
    print(
        f"CPU per sample: scan {per_sample * 1000:.3f} ms, hierarchical structure validation "
        f"{validation * 1000:.3f} ms: ratio {per_sample / validation:.2f}x"
    )


if __name__ == "__main__":
    main()
