"""Reading consultations from every supported input: CSV, JSONL, JSON, Parquet, a
`datasets.save_to_disk` folder (Dataset and DatasetDict), and the hub (offline: a clear error)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medstore.recipes import Skip, SourceError, Task
from medstore.recipes.hierarchical import HierarchicalRecipe
from medstore.resources import resource_dir
from medstore.sources.consultations import read_consultations

COLUMNS = ["Description", "Patient", "Doctor", "Status"]
ROWS = [
    {
        "Description": "Sore throat",
        "Patient": "My throat hurts.",
        "Doctor": "Gargle with salt water.",
        "Status": "low severity",
    },
    {
        "Description": "Chest pain",
        "Patient": "Pain, now.",
        "Doctor": None,
        "Status": "high severity",
    },
    {
        "Description": "Rash",
        "Patient": "Itchy spots,\nsince Monday.",
        "Doctor": "Use an emollient.",
        "Status": "medium severity",
    },
]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_saved_dataset(path: Path, rows: list[dict]) -> Path:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


WRITERS = {
    "data.csv": write_csv,
    "data.jsonl": write_jsonl,
    "data.parquet": write_parquet,
    "saved_dataset": write_saved_dataset,
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_format_gives_the_same_records(tmp_path: Path, name: str) -> None:
    source = WRITERS[name](tmp_path / name, ROWS)
    rows = list(read_consultations(source))
    assert [row.index for row in rows] == [0, 1, 2]
    assert [row.record for row in rows] == ROWS  # nulls stay null, line breaks survive


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_recipe_tasks_and_skips_are_the_same_in_every_format(tmp_path: Path, name: str) -> None:
    source = WRITERS[name](tmp_path / name, ROWS)
    items = list(HierarchicalRecipe().read_source(str(source)))
    assert [type(item) for item in items] == [Task, Skip, Task]
    assert items[1].reason == "doctor answer is empty"
    reference = list(HierarchicalRecipe().read_source(str(write_jsonl(tmp_path / "r.jsonl", ROWS))))
    # A consultation's task key is a hash of its columns, so the format does not change it.
    assert [item.source_id for item in items] == [item.source_id for item in reference]


def test_dataset_dict_folder_takes_the_train_split(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "dict"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:1])}
    ).save_to_disk(str(folder))
    assert len(list(read_consultations(folder))) == 3


def test_shipped_sample_has_varied_severity_and_two_empty_answers() -> None:
    source = resource_dir("data") / "consultations_sample.jsonl"
    rows = list(read_consultations(source))
    assert len(rows) >= 40
    statuses = {row.record["Status"] for row in rows}
    assert statuses == {"low severity", "medium severity", "high severity"}
    empty = [row for row in rows if not (row.record["Doctor"] or "").strip()]
    assert len(empty) == 2
    items = list(HierarchicalRecipe().read_source(None))
    assert sum(isinstance(item, Task) for item in items) == len(rows) - 2


def test_unusable_rows_are_skipped_with_a_reason(tmp_path: Path) -> None:
    rows = [
        {**ROWS[0]},
        {**ROWS[0]},  # the same consultation twice
        {**ROWS[0], "Doctor": "   "},
        {**ROWS[0], "Description": "", "Patient": None, "Doctor": "Rest."},
        {**ROWS[0], "Doctor": "Rest.", "Status": "urgent"},
    ]
    items = list(HierarchicalRecipe().read_source(str(write_jsonl(tmp_path / "x.jsonl", rows))))
    assert isinstance(items[0], Task)
    assert [(item.reason, item.detail) for item in items[1:]] == [
        ("duplicate consultation", "x.jsonl line 2 repeats x.jsonl line 1"),
        ("doctor answer is empty", "x.jsonl line 3"),
        ("patient question is empty", "x.jsonl line 4"),
        ("status is not low, medium or high severity", "x.jsonl line 5: 'urgent'"),
    ]


def test_extra_columns_are_kept(tmp_path: Path) -> None:
    rows = [{**ROWS[0], "source_url": "https://example.org/1"}]
    (task,) = HierarchicalRecipe().read_source(str(write_parquet(tmp_path / "x.parquet", rows)))
    assert task.record["consultation"]["source_url"] == "https://example.org/1"


def errors_of(source: str | Path) -> str:
    with pytest.raises(SourceError) as caught:
        list(read_consultations(source))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "missing.jsonl").endswith(
        "missing.jsonl: no such consultations file or folder"
    )
    (tmp_path / "notes.txt").write_text("hello")
    assert "unknown consultations format '.txt'" in errors_of(tmp_path / "notes.txt")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    assert "bad.jsonl: line 2: not valid JSON" in errors_of(bad_json)
    no_doctor = write_jsonl(tmp_path / "nodoc.jsonl", [{"Description": "x", "Patient": "y"}])
    assert "line 1: no 'Doctor', 'Status' column" in errors_of(no_doctor)
    wrong_csv = tmp_path / "wrong.csv"
    wrong_csv.write_text("question,answer\na,b\n")
    assert "no 'Description', 'Patient', 'Doctor', 'Status' column" in errors_of(wrong_csv)
    assert "found question, answer" in errors_of(wrong_csv)
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("not parquet")
    assert "not a readable Parquet file" in errors_of(not_parquet)
    (tmp_path / "plain_folder").mkdir()
    assert "not one written by datasets.save_to_disk" in errors_of(tmp_path / "plain_folder")


def test_hub_source_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = errors_of("hf:mahfoos/Patient-Doctor-Conversation:train")
    assert message.startswith("hf:mahfoos/Patient-Doctor-Conversation:train: the Hugging Face")
    assert "offline" in message and "save_to_disk" in message
    assert "expected hf:owner/name" in errors_of("hf:no-owner")
