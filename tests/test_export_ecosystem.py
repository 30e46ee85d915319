"""Exports for the ecosystem, on warehouses made by real medec-cot runs against the fake teacher:
declared column types (an export where every `error_details` is null concatenates with one where
they are set), prompt/completion columns, the hf-hub-ready folder loaded by `load_dataset`, and
DPO preference pairs from a critic that first gave the wrong verdict."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.recipes.medec_safe import MedecSafeRecipe
from medstore.training.export_features import FeatureError, arrow_table, column_specs

from .fakeserver import serve
from .teachers import first_user_message
from .teachers_medec import REASONING_WORDS, medec_stage, medec_teacher
from .test_medec_source import pair_row, write_medec

PAIRS = 3


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def truth_of(request: dict[str, Any]) -> dict[str, Any]:
    text = first_user_message(request)
    start = text.index("given to you):\n") + len("given to you):\n")
    return json.loads(text[start : text.index("\n}", start) + 2])


def wrong_verdict(request: dict[str, Any]) -> str:
    """A critic reply with the other verdict than the doctors' (a well-formed, long trace)."""
    if truth_of(request)["verdict"] == "ERROR":
        return json.dumps({"reasoning": REASONING_WORDS, "verdict": "CORRECT"})
    return json.dumps(
        {
            "reasoning": REASONING_WORDS + " The dose sentence looks wrong.",
            "verdict": "ERROR",
            "error_sentence": "A 60-year-old man has chest pain.",
            "correction": "A 60-year-old woman has chest pain.",
        }
    )


def is_repair(request: dict[str, Any]) -> bool:
    return any(message["role"] == "assistant" for message in request["messages"])


def wrong_then_right(request: dict[str, Any]) -> str:
    """Every critic's first answer has the wrong verdict; the repair gets it right."""
    if medec_stage(request) == "critic" and not is_repair(request):
        return wrong_verdict(request)
    return medec_teacher(request)


def error_notes_fail(request: dict[str, Any]) -> str:
    """Critics of error notes always miss the error and error generators write too little, so
    only the samples of correct notes (no error_details) are accepted."""
    stage = medec_stage(request)
    if stage == "critic" and truth_of(request)["verdict"] == "ERROR":
        return wrong_verdict(request)
    if stage == "generator_error":
        return "Too short."
    return medec_teacher(request)


def run_medec_cot(folder: Path, responder: Any) -> Path:
    source = write_medec(folder / "medec.csv", [pair_row(f"ms-x-{i}") for i in range(PAIRS)])
    db = folder / "medec-cot.db"
    with serve() as server:
        server.set_responder(responder)
        result = invoke(
            "run", "--recipe", "medec-cot", "--source", str(source), "--base-url",
            server.openai_base_url, "--model", "fake", "--db", str(db),
            "--retry-base-delay", "0", "--no-progress",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture(scope="module")
def repaired_db(tmp_path_factory) -> Path:
    """All 12 tasks accepted; each of the 6 critics after one wrong-verdict answer."""
    return run_medec_cot(tmp_path_factory.mktemp("repaired"), wrong_then_right)


@pytest.fixture(scope="module")
def correct_only_db(tmp_path_factory) -> Path:
    """Only the 6 tasks on correct notes accepted: error_details is null in every row."""
    return run_medec_cot(tmp_path_factory.mktemp("correct-only"), error_notes_fail)


# The scripted teachers write near-identical text for every record, which the quality scan
# rightly clusters; these tests are about the files, so they keep every row.
KEEP_ALL = ("--keep-duplicates", "--keep-contaminated")


def export(db: Path, out: Path, *extra: str, recipe: str = "medec-cot") -> dict[str, Any]:
    result = invoke(
        "export",
        "--recipe",
        recipe,
        "--out",
        str(out),
        "--db",
        str(db),
        "--json",
        *KEEP_ALL,
        *extra,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_column_types_do_not_depend_on_the_data(
    repaired_db: Path, correct_only_db: Path, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import concatenate_datasets, load_from_disk

    tables, datasets = [], []
    for name, db in (("with", repaired_db), ("without", correct_only_db)):
        export(db, tmp_path / f"{name}-parquet", "--format", "parquet")
        tables.append(pq.read_table(tmp_path / f"{name}-parquet" / "train.parquet"))
        export(db, tmp_path / f"{name}-arrow", "--format", "arrow")
        datasets.append(load_from_disk(str(tmp_path / f"{name}-arrow"))["train"])
    with_details, without_details = (t.column("error_details").to_pylist() for t in tables)
    assert any(with_details) and not any(without_details)  # the data really differ
    assert tables[0].schema == tables[1].schema
    assert pa.types.is_struct(tables[1].schema.field("error_details").type)
    assert pa.concat_tables(tables).num_rows == sum(t.num_rows for t in tables)
    assert datasets[0].features == datasets[1].features
    combined = concatenate_datasets(datasets)
    assert len(combined) == sum(len(d) for d in datasets)


def test_prompt_and_completion_split_the_chat(repaired_db: Path, tmp_path: Path) -> None:
    export(repaired_db, tmp_path / "jsonl", "--format", "jsonl")
    rows = [json.loads(line) for line in (tmp_path / "jsonl" / "train.jsonl").open()]
    assert rows
    for row in rows:
        assert row["prompt"] + row["completion"] == row["messages"]
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["completion"][0]["role"] == "assistant"


def test_medec_safe_reasoning_keeps_its_type_when_every_row_lacks_it() -> None:
    recipe = MedecSafeRecipe()
    specs = column_specs(["sample_id", "reasoning", "metadata"], recipe.export_features)
    reasoning = {
        "error_identified": "Aspirin.",
        "why_wrong": "Heparin is the anticoagulant indicated here.",
        "key_clues": ["chest pain", "ECG", "troponin"],
        "correct_answer": "Heparin is given.",
        "clinical_impact": "Undertreated thrombosis.",
    }
    metadata = {"generation_type": "medec_verified_error", "split": "ms", "error_sentence_id": 1}
    without, _ = arrow_table([{"sample_id": "a", "reasoning": None}], specs, recipe.name)
    present, _ = arrow_table(
        [{"sample_id": "b", "reasoning": reasoning, "metadata": metadata}], specs, recipe.name
    )
    assert without.schema == present.schema
    assert present.column("reasoning").to_pylist() == [reasoning]
    with pytest.raises(FeatureError, match=r"reasoning: field\(s\) extra not declared"):
        arrow_table([{"sample_id": "c", "reasoning": {**reasoning, "extra": 1}}], specs, "x")
    with pytest.raises(FeatureError, match="column 'sample_id' does not fit"):
        arrow_table([{"sample_id": 7}], specs, recipe.name)


def test_hf_hub_ready_folder_loads_with_load_dataset(repaired_db: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    out = tmp_path / "hub"
    summary = export(repaired_db, out, "--format", "hf-hub-ready")
    manifest = json.loads((out / "manifest.json").read_text())
    loaded = load_dataset(str(out))
    non_empty = {split: n for split, n in summary["counts"].items() if split != "total" and n}
    assert {split: len(loaded[split]) for split in loaded} == non_empty
    assert set(manifest["files"]) == set(non_empty)
    assert "error_details" in loaded["train"].features
    assert loaded["train"].features["error_details"]["match_score"].dtype == "float64"
    card = (out / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: cc-by-4.0" in header and "- text-generation" in header
    assert "configs:" in header and "path: data/train-00000-of-00001.parquet" in header
    assert "MEDEC (CC BY 4.0): Ben Abacha A." in card
    assert "Credentialed data" not in card
    from medstore.training.data import load_training_data

    trained_on = load_training_data(out).splits
    assert {split: len(rows) for split, rows in trained_on.items()} == non_empty
    assert trained_on["train"] == loaded["train"]["messages"]


def rejected_output(db: Path, event_id: str) -> str:
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute(
            "SELECT json_extract(payload_json, '$.raw_output_blob') FROM events WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        (text,) = conn.execute("SELECT content FROM blobs WHERE hash = ?", (blob,)).fetchone()
    return text


def test_preference_pairs_are_the_verified_and_the_wrong_verdict_trace(
    repaired_db: Path, tmp_path: Path
) -> None:
    export(repaired_db, tmp_path / "sft", "--format", "jsonl")
    summary = export(repaired_db, tmp_path / "dpo", "--format", "jsonl", "--kind", "preference")
    assert summary["kind"] == "preference" and summary["counts"]["total"] == 2 * PAIRS
    sft = {
        row["sample_id"]: row
        for split in ("train", "validation")
        for row in map(json.loads, (tmp_path / "sft" / f"{split}.jsonl").open())
    }
    pairs = [
        json.loads(line)
        for split in ("train", "validation")
        for line in (tmp_path / "dpo" / f"{split}.jsonl").open()
    ]
    assert len(pairs) == 2 * PAIRS and {row["label"] for row in pairs} == {"CORRECT", "ERROR"}
    for pair in pairs:
        sample = sft[pair["sample_id"]]
        assert sample["role"] == "critic" and pair["split"] == sample["split"]
        assert pair["prompt"] == sample["prompt"] and pair["chosen"] == sample["completion"]
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen.startswith("<think>") and rejected.startswith("<think>")
        wrong = "ERROR" if pair["label"] == "CORRECT" else "CORRECT"
        assert f"Verdict: {pair['label']}" in chosen and f"Verdict: {wrong}" in rejected
        assert pair["rejected_errors"][0].startswith("verdict:")
        raw = json.loads(rejected_output(repaired_db, pair["rejected_event_id"]))
        assert raw["verdict"] == wrong and raw["reasoning"] in rejected
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert "A preference (DPO) export" in card and "- dpo" in card


def test_preference_export_refuses_what_has_no_pairs(correct_only_db: Path, tmp_path: Path) -> None:
    result = invoke(
        "export", "--recipe", "medec-cot", "--kind", "preference", "--db", str(correct_only_db),
        "--out", str(tmp_path / "none"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no preference pairs of recipe 'medec-cot'" in result.output
    assert not (tmp_path / "none").exists()
    result = invoke(
        "export", "--recipe", "medec-safe", "--kind", "preference", "--db", str(correct_only_db),
        "--out", str(tmp_path / "safe"),
    )  # fmt: skip
    assert result.exit_code == 1 and "has no preference pairs" in result.output


@pytest.mark.slow
def test_train_dpo_reads_a_preference_export(repaired_db: Path, tmp_path: Path) -> None:
    """The chain a user runs: pairs exported from the log, then `train --method dpo` on them."""
    export(repaired_db, tmp_path / "dpo", "--format", "jsonl", "--kind", "preference")
    run = tmp_path / "run"
    result = invoke("train", "--method", "dpo", "--data", str(tmp_path / "dpo"), "--out",
                    str(run), "--db", str(repaired_db), "--batch-size", "2", "--max-steps", "1",
                    "--max-seq-len", "1024", "--no-progress", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "training_manifest.json").read_text())
    assert manifest["config"]["objective"] == "dpo"
    assert manifest["data"]["export_manifest_hash"]  # the pairs' export is in the lineage
    assert manifest["metrics"]["steps"] == 1
