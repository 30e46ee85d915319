"""`export` on warehouses made by real recipe runs against the fake teacher: round trips in every
format, determinism, lineage, `<think>` conversion, reviewer rejections and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.training.chat import to_think_tags
from medstore.training.export import split_of
from medstore.training.export_files import MANIFEST
from medstore.warehouse.events import Envelope, ReviewVerdict
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import consult_teacher
from .teachers_medec import medec_teacher
from .test_consult_run import run_args, write_scenarios
from .test_medec_source import pair_row, write_medec


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


# The scripted teachers write near-identical text for every record, which the quality scan
# rightly clusters; these tests are about the files, so they keep every row (dropping
# duplicates and contaminated rows is tests/test_dedup_contamination.py's subject).
KEEP_ALL = ("--keep-duplicates", "--keep-contaminated")


def export(db: Path, out: Path, *extra: str, recipe: str = "consult", fmt: str = "jsonl"):
    result = invoke(
        "export", "--recipe", recipe, "--format", fmt, "--out", str(out), "--db", str(db),
        *KEEP_ALL, *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def read_jsonl(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for split in ("train", "validation")
        for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


@pytest.fixture(scope="module")
def consult_db(tmp_path_factory) -> Path:
    """A warehouse with 12 accepted consult samples (made once; copy it before appending)."""
    folder = tmp_path_factory.mktemp("consult")
    source = write_scenarios(folder / "scenarios.json", 12)
    db = folder / "warehouse.db"
    with serve() as server:
        server.set_responder(consult_teacher)
        result = CliRunner().invoke(cli, run_args(server, db, source))
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def db(consult_db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "warehouse.db"
    shutil.copy(consult_db, copy)
    return copy


def run_medec(recipe: str, folder: Path) -> Path:
    source = write_medec(folder / "medec.csv", [pair_row(f"ms-x-{i}") for i in range(3)])
    db = folder / f"{recipe}.db"
    with serve() as server:
        server.set_responder(medec_teacher)
        result = invoke(
            "run", "--recipe", recipe, "--source", str(source), "--base-url",
            server.openai_base_url, "--model", "fake", "--db", str(db),
            "--retry-base-delay", "0", "--no-progress",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return db


def test_jsonl_and_arrow_hold_the_same_rows(db: Path, tmp_path: Path) -> None:
    from datasets import DatasetDict, load_from_disk

    export(db, tmp_path / "jsonl")
    export(db, tmp_path / "arrow", fmt="arrow")
    rows = read_jsonl(tmp_path / "jsonl")
    assert len(rows) == 12
    loaded = load_from_disk(str(tmp_path / "arrow"))
    assert isinstance(loaded, DatasetDict) and set(loaded) == {"train", "validation"}
    arrow_rows = [row for split in ("train", "validation") for row in loaded[split]]
    assert arrow_rows == rows
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][2]["content"].startswith("<think>")
        assert {"sample_id", "task_key", "split", "label", "dialogue", "patient_profile"} <= set(
            row
        )
        assert "created_at" not in row  # volatile fields stay out: they would break determinism
    manifest = json.loads((tmp_path / "arrow" / MANIFEST).read_text())
    assert manifest["counts"]["total"] == 12 and manifest["teachers"]["models"] == {
        "fake-model": 48
    }


def test_parquet_round_trip(db: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    export(db, tmp_path / "jsonl")
    export(db, tmp_path / "parquet", fmt="parquet")
    parquet_rows = [
        row
        for split in ("train", "validation")
        for row in pq.read_table(tmp_path / "parquet" / f"{split}.parquet").to_pylist()
    ]
    assert parquet_rows == read_jsonl(tmp_path / "jsonl")


def test_re_export_gives_identical_files_and_a_second_event(db: Path, tmp_path: Path) -> None:
    for fmt in ("jsonl", "arrow"):
        export(db, tmp_path / f"{fmt}-1", fmt=fmt)
        first = folder_bytes(tmp_path / f"{fmt}-1")
        export(db, tmp_path / f"{fmt}-2", fmt=fmt)
        assert folder_bytes(tmp_path / f"{fmt}-2") == first
        export(db, tmp_path / f"{fmt}-1", fmt=fmt)  # over an earlier export: replaced in place
        assert folder_bytes(tmp_path / f"{fmt}-1") == first
    with Warehouse(db) as warehouse:
        events = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'export_written'"
        )
        assert len(events) == 6
        exports = warehouse.query("SELECT DISTINCT export_event_id FROM sample_exports")
        assert len(exports) == 6


def test_split_is_a_stable_hash_of_the_task_key() -> None:
    keys = [f"consult:case-{i}:v1" for i in range(2000)]
    splits = [split_of(key, 0.9) for key in keys]
    assert splits == [split_of(key, 0.9) for key in keys]
    assert 0.85 < splits.count("train") / len(keys) < 0.95
    # a recipe version bump keeps every task in its split
    assert splits == [split_of(key.replace(":v1", ":v2"), 0.9) for key in keys]
    assert {split_of(key, 1.0) for key in keys} == {"train"}


def test_split_ratio_and_one_row_per_task(db: Path, tmp_path: Path) -> None:
    export(db, tmp_path / "half", "--split-ratio", "0.5")
    rows = read_jsonl(tmp_path / "half")
    assert [row["split"] for row in rows] == [split_of(row["task_key"], 0.5) for row in rows]
    assert len({row["task_key"] for row in rows}) == len(rows) == 12


def test_every_row_resolves_to_its_events(db: Path, tmp_path: Path) -> None:
    export(db, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    rows = {row["sample_id"]: row for row in read_jsonl(tmp_path / "out")}
    assert [entry["sample_id"] for entry in manifest["rows"]] == [
        row["sample_id"] for row in sorted(rows.values(), key=lambda r: r["task_key"])
    ]
    with Warehouse(db) as warehouse:
        for entry in manifest["rows"]:
            placeholders = ",".join("?" * len(entry["event_ids"]))
            events = warehouse.query(
                "SELECT event_id, task_key, event_type FROM events "
                f"WHERE event_id IN ({placeholders})",
                tuple(entry["event_ids"]),
            )
            assert len(events) == len(entry["event_ids"])
            assert {event["task_key"] for event in events} == {rows[entry["sample_id"]]["task_key"]}
            types = {event["event_type"] for event in events}
            assert {"llm_request", "llm_response", "sample_accepted"} <= types
            provenance = warehouse.query(
                "SELECT event_id FROM provenance WHERE sample_id = ?", (entry["sample_id"],)
            )
            assert {row["event_id"] for row in provenance} <= set(entry["event_ids"])


def test_human_rejected_samples_are_left_out(db: Path, tmp_path: Path) -> None:
    export(db, tmp_path / "before")
    rejected = read_jsonl(tmp_path / "before")[0]["sample_id"]
    with Warehouse(db) as warehouse:
        verdict = ReviewVerdict(sample_id=rejected, verdict="reject", reviewer="dr-a", note="wrong")
        warehouse.append([(verdict, Envelope(recipe="consult"))])
    export(db, tmp_path / "after")
    after = read_jsonl(tmp_path / "after")
    assert len(after) == 11 and rejected not in {row["sample_id"] for row in after}
    manifest = json.loads((tmp_path / "after" / MANIFEST).read_text())
    assert rejected not in {entry["sample_id"] for entry in manifest["rows"]}


def test_think_tag_conversion() -> None:
    assert to_think_tags("<reasoning>\nA then B\n</reasoning>\nVerdict: CORRECT") == (
        "<think>\nA then B\n</think>\nVerdict: CORRECT"
    )
    assert to_think_tags("<Thinking>x</ thinking> <thought>y</thought>") == (
        "<think>x</think> <think>y</think>"
    )
    assert to_think_tags("no tags, a < b > c") == "no tags, a < b > c"


def test_medec_cot_export_turns_reasoning_into_think(tmp_path: Path) -> None:
    db = run_medec("medec-cot", tmp_path)
    export(db, tmp_path / "out", recipe="medec-cot", fmt="arrow")
    from datasets import load_from_disk

    loaded = load_from_disk(str(tmp_path / "out"))
    rows = [row for split in loaded.values() for row in split]
    assert len(rows) == 12  # 4 examples per pair
    for row in rows:
        system, _, answer = (m["content"] for m in row["messages"])
        assert answer.startswith("<think>") and "</think>" in answer
        assert "<reasoning>" not in answer + system
        assert "<reasoning>" in row["reasoning"]  # the recipe's own field keeps its text
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["counts"]["think_tags_converted"] == 12
    card = (tmp_path / "out" / "README.md").read_text()
    assert "CC BY 4.0" in card and "MEDEC" in card


def test_medec_safe_card_names_licence_and_balance(tmp_path: Path) -> None:
    db = run_medec("medec-safe", tmp_path)
    export(db, tmp_path / "out", recipe="medec-safe")
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["view"] == "medec_safe_balanced"
    assert manifest["counts"]["labels"] == {"CORRECT": 3, "INCORRECT": 3}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Ben Abacha" in card and "| CORRECT |" in card
    assert "Credentialed data" not in card


def test_empty_dataset_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    Warehouse(db).close()
    result = invoke(
        "export", "--recipe", "consult", "--out", str(tmp_path / "out"), "--db", str(db)
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "no samples" in result.output
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("empty.db")) == []


def test_refuses_a_folder_that_is_not_an_export(db: Path, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    result = invoke("export", "--recipe", "consult", "--out", str(occupied), "--db", str(db))
    assert result.exit_code == 1 and "holds no medstore export" in result.output
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]
    result = invoke("export", "--recipe", "nope", "--out", str(tmp_path / "x"), "--db", str(db))
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    result = invoke(
        "export", "--recipe", "consult", "--include-fallbacks", "--out", str(tmp_path / "y"),
        "--db", str(db),
    )  # fmt: skip
    assert result.exit_code == 1 and "no fallback" in result.output


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_an_empty_split_is_written_as_an_empty_file(db: Path, tmp_path: Path, fmt: str) -> None:
    """--split-ratio 1 puts every row in train: validation is empty, not an Arrow error."""
    result = export(db, tmp_path / "out", "--split-ratio", "1", fmt=fmt)
    assert result.exit_code == 0, result.output
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(tmp_path / "out" / "validation.parquet").num_rows == 0
        assert pq.read_table(tmp_path / "out" / "train.parquet").num_rows > 0
    else:
        from datasets import load_from_disk

        splits = load_from_disk(str(tmp_path / "out"))
        assert len(splits["validation"]) == 0 and len(splits["train"]) > 0
