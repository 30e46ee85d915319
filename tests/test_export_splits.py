"""Grouped, stable export splits: every sample of a group in one split, train/validation/test
shares, medec-safe balanced inside every split, and a sample keeping its split as samples are
added. Real recipe runs against the fake teacher."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.training.export_files import MANIFEST
from medstore.training.export_rows import (
    ExportError,
    balance_in_splits,
    parse_splits,
    split_of_group,
)

from .fakeserver import serve
from .teachers_medec import medec_teacher
from .test_medec_source import pair_row, write_medec

SPLITS_3 = "train=0.6,validation=0.2,test=0.2"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def run_medec(recipe: str, db: Path, source: Path) -> None:
    with serve() as server:
        server.set_responder(medec_teacher)
        result = invoke(
            "run", "--recipe", recipe, "--source", str(source), "--base-url",
            server.openai_base_url, "--model", "fake", "--db", str(db),
            "--retry-base-delay", "0", "--no-progress",
        )  # fmt: skip
    assert result.exit_code == 0, result.output


def export(db: Path, out: Path, recipe: str, *extra: str) -> list[dict]:
    # Keep every row: the scripted notes differ in a word, which the quality scan clusters
    # (tests/test_dedup_contamination.py is about that).
    result = invoke("export", "--recipe", recipe, "--format", "jsonl", "--out", str(out),
                    "--db", str(db), "--keep-duplicates", "--keep-contaminated",
                    *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST).read_text())
    return [
        json.loads(line)
        for split in manifest["files"]
        for line in (out / f"{split}.jsonl").read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def medec_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("medec")
    return write_medec(folder / "medec.csv", [pair_row(f"ms-x-{i}") for i in range(16)])


def test_medec_cot_variants_of_a_note_share_a_split(medec_source: Path, tmp_path: Path) -> None:
    db = tmp_path / "cot.db"
    run_medec("medec-cot", db, medec_source)
    rows = export(db, tmp_path / "out", "medec-cot", "--splits", SPLITS_3)
    assert len(rows) == 64
    splits_of_note = defaultdict(set)
    for row in rows:
        assert row["group"] == f"medec:{row['pair_id']}"
        splits_of_note[row["pair_id"]].add(row["split"])
    assert all(len(splits) == 1 for splits in splits_of_note.values())
    assert {row["split"] for row in rows} == {"train", "validation", "test"}
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["split"]["shares"] == {"train": 0.6, "validation": 0.2, "test": 0.2}
    assert manifest["split"]["group_key"] == "MEDEC note (Text ID)"
    assert sum(manifest["counts"]["groups"].values()) == 16
    assert all(entry["group"].startswith("medec:") for entry in manifest["rows"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert (
        "Split by MEDEC note (Text ID)" in card and "| label | train | validation | test |" in card
    )


def test_medec_safe_is_balanced_inside_every_split(medec_source: Path, tmp_path: Path) -> None:
    db = tmp_path / "safe.db"
    run_medec("medec-safe", db, medec_source)
    rows = export(db, tmp_path / "out", "medec-safe", "--splits", SPLITS_3)
    by_split = Counter((row["split"], row["label"]) for row in rows)
    for split in ("train", "validation", "test"):
        assert by_split[(split, "CORRECT")] == by_split[(split, "INCORRECT")]
    pairs = defaultdict(set)
    for row in rows:
        pairs[row["original_note_id"]].add(row["split"])
    assert all(len(splits) == 1 for splits in pairs.values())  # paraphrase and note together


def test_balance_leaves_out_singles_first() -> None:
    """Single halves (a pair whose other half was rejected) are matched inside each split; a
    whole pair is never broken, and the excess single is left out."""
    rows = [
        {"sample_id": "s-1", "group": "medec:a", "split": "train", "label": "CORRECT"},
        {"sample_id": "s-2", "group": "medec:a", "split": "train", "label": "INCORRECT"},
        {"sample_id": "s-3", "group": "medec:b", "split": "train", "label": "CORRECT"},
        {"sample_id": "s-4", "group": "medec:c", "split": "test", "label": "INCORRECT"},
        {"sample_id": "s-5", "group": "medec:d", "split": "test", "label": "CORRECT"},
        {"sample_id": "s-6", "group": "medec:e", "split": "test", "label": "CORRECT"},
    ]
    assert balance_in_splits(rows, ("CORRECT", "INCORRECT")) == {"s-3": "train", "s-6": "test"}
    assert balance_in_splits(rows, ()) == {}


def test_a_sample_keeps_its_split_when_samples_are_added(tmp_path: Path) -> None:
    db = tmp_path / "grow.db"
    few = write_medec(tmp_path / "few.csv", [pair_row(f"ms-x-{i}") for i in range(6)])
    run_medec("medec-cot", db, few)
    before = {r["sample_id"]: r["split"] for r in export(db, tmp_path / "a", "medec-cot")}
    more = write_medec(tmp_path / "more.csv", [pair_row(f"ms-x-{i}") for i in range(12)])
    run_medec("medec-cot", db, more)
    after = {r["sample_id"]: r["split"] for r in export(db, tmp_path / "b", "medec-cot")}
    assert len(after) == 48 and set(before) <= set(after)
    assert all(after[sample_id] == split for sample_id, split in before.items())


def test_split_shares_and_their_errors() -> None:
    assert parse_splits("test=0.1,train=0.8,validation=0.1") == {
        "train": 0.8, "validation": 0.1, "test": 0.1,
    }  # fmt: skip
    for text, message in [
        ("train=0.8,holdout=0.2", "unknown split 'holdout'"),
        ("train=0.8,validation=0.1", "sum to 0.9, not 1"),
        ("train=x,validation=1", "train='x' is not a number"),
        ("validation=1", "train share must be above 0"),
        ("train=0.5,train=0.5", "train given twice"),
    ]:
        with pytest.raises(ExportError, match=message):
            parse_splits(text)
    groups = [f"consult:case-{i}" for i in range(3000)]
    shares = {"train": 0.8, "validation": 0.1, "test": 0.1}
    counts = Counter(split_of_group(group, shares) for group in groups)
    assert 0.77 < counts["train"] / 3000 < 0.83 and 0.08 < counts["test"] / 3000 < 0.12


def test_export_flags(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    run_medec("medec-cot", db, write_medec(tmp_path / "m.csv", [pair_row("ms-x-0")]))
    both = invoke("export", "--recipe", "medec-cot", "--db", str(db), "--out", str(tmp_path / "o"),
                  "--splits", "train=1", "--split-ratio", "0.5")  # fmt: skip
    assert both.exit_code == 2 and "not both" in both.output
    bad = invoke("export", "--recipe", "medec-cot", "--db", str(db), "--out", str(tmp_path / "o"),
                 "--splits", "train=0.5")  # fmt: skip
    assert bad.exit_code == 1 and "--splits: the shares sum to 0.5, not 1" in bad.output
    assert not (tmp_path / "o").exists()


def test_every_recipe_declares_its_group() -> None:
    """consult and hierarchical group by their task (so their splits are the ones they always
    had); the MEDEC recipes share the note's key; mimic-dialogue groups a patient's admissions."""
    from medstore.plugins import get_recipe
    from medstore.training.export_rows import split_of

    groups = {
        "consult": ("consult:case-7:v1", {"case_id": "case-7"}, "consult:case-7"),
        "hierarchical": ("hierarchical:c-0123:v1", {}, "hierarchical:c-0123"),
        "medec-cot": ("medec-cot:ms-x-1_critic_error:v1", {"pair_id": "ms-x-1"}, "medec:ms-x-1"),
        "medec-safe": ("medec-safe:ms-x-1_correct:v1", {"original_note_id": "ms-x-1"},
                       "medec:ms-x-1"),
        "mimic-dialogue": ("mimic-dialogue:12-34:abc:v1", {"subject_id": 12}, "mimic:12"),
    }  # fmt: skip
    for name, (task_key, sample, group) in groups.items():
        recipe = get_recipe(name)()
        assert recipe.group_key(task_key, sample) == group
        assert recipe.group_by != "task"
    for task_key in ("consult:case-7:v1", "hierarchical:c-0123:v1"):
        group = task_key.rsplit(":", 1)[0]
        assert split_of_group(group, {"train": 0.9, "validation": 0.1}) == split_of(task_key, 0.9)
