"""Held-out only: a trained model is not scored on what it trained on (by group and by text),
and prompts from an export come from its held-out split. Real exports of real runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medstore.training.data import load_training_data
from medstore.training.eval_heldout import check_held_out
from medstore.training.eval_tasks import EvalError, export_prompts, medec_examples
from medstore.warehouse.hashing import content_hash

from .test_export_splits import export, run_medec
from .test_medec_source import pair_row, write_medec


def trained_on(folder: Path, data_dir: Path) -> Path:
    """A model folder whose training_manifest.json names ``data_dir``, as `train` writes it."""
    folder.mkdir()
    manifest = data_dir / "manifest.json"
    data = {
        "dir": str(data_dir),
        "fingerprint": load_training_data(data_dir).fingerprint,
        "export_manifest": str(manifest) if manifest.exists() else None,
        "export_manifest_hash": content_hash(manifest.read_text()) if manifest.exists() else None,
    }
    (folder / "training_manifest.json").write_text(json.dumps({"data": data}))
    return folder


@pytest.fixture(scope="module")
def medec_export(tmp_path_factory) -> tuple[Path, Path]:
    """A medec-cot export (all train) of notes ms-x-0..5, and the CSV it came from."""
    folder = tmp_path_factory.mktemp("heldout")
    source = write_medec(folder / "seen.csv", [pair_row(f"ms-x-{i}", f"Drug{i}") for i in range(6)])
    run_medec("medec-cot", folder / "w.db", source)
    export(folder / "w.db", folder / "export", "medec-cot", "--splits", "train=1")
    return folder / "export", source


def test_overlap_is_an_error_unless_allowed(medec_export, tmp_path: Path) -> None:
    export_dir, seen = medec_export
    model = trained_on(tmp_path / "model", export_dir)
    _, examples = medec_examples(str(seen), 50)
    with pytest.raises(EvalError, match=r"was trained on 6 of the 6 eval examples \(e\.g\. ms-x-0"):
        check_held_out(model, examples, allow_overlap=False)
    allowed = check_held_out(model, examples, allow_overlap=True)
    assert allowed.as_dict() == {"checked": ["groups", "texts"], "overlap": 6, "allowed": True}
    unseen = write_medec(tmp_path / "unseen.csv", [pair_row("ms-y-0", "Insulin")])
    _, fresh = medec_examples(str(unseen), 50)
    assert check_held_out(model, fresh, allow_overlap=False).overlap == []


def test_the_text_check_covers_a_bare_jsonl_and_other_ids(medec_export, tmp_path: Path) -> None:
    """The same note under another id is caught by its text; a .jsonl has no groups at all."""
    _, seen = medec_export
    _, examples = medec_examples(str(seen), 1)
    note = examples[0].text
    data = tmp_path / "chat"
    data.mkdir()
    chat = {"messages": [{"role": "user", "content": f"Check this:\n{note}"},
                         {"role": "assistant", "content": "CORRECT"}]}  # fmt: skip
    (data / "train.jsonl").write_text(json.dumps(chat) + "\n")
    model = trained_on(tmp_path / "model", data)
    renamed = write_medec(tmp_path / "renamed.csv", [pair_row("other-0", "Drug0")])
    _, again = medec_examples(str(renamed), 1)
    with pytest.raises(EvalError, match="was trained on 1 of the 1 eval examples"):
        check_held_out(model, again, allow_overlap=False)


def test_unverifiable_training_data_is_an_error(medec_export, tmp_path: Path) -> None:
    export_dir, seen = medec_export
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    model = trained_on(tmp_path / "model", copy)
    shutil.rmtree(copy)
    _, examples = medec_examples(str(seen), 2)
    with pytest.raises(EvalError, match="is gone or changed, so held-out cannot be checked"):
        check_held_out(model, examples, allow_overlap=False)
    assert check_held_out(model, examples, allow_overlap=True).checked == []
    assert check_held_out(tmp_path, examples, allow_overlap=False).checked == []  # not trained


def test_export_prompts_come_from_the_held_out_split(tmp_path: Path) -> None:
    source = write_medec(tmp_path / "m.csv", [pair_row(f"ms-x-{i}", f"D{i}") for i in range(12)])
    run_medec("medec-cot", tmp_path / "w.db", source)
    rows = export(tmp_path / "w.db", tmp_path / "three", "medec-cot", "--splits",
                  "train=0.5,validation=0.25,test=0.25")  # fmt: skip
    test_ids = {row["sample_id"] for row in rows if row["split"] == "test"}
    validation_ids = {row["sample_id"] for row in rows if row["split"] == "validation"}
    examples = export_prompts(tmp_path / "three", 100)
    assert {e.key for e in examples} == test_ids and test_ids
    assert all(e.group.startswith("medec:") and e.text for e in examples)
    validation = export_prompts(tmp_path / "three", 100, "validation")
    assert {e.key for e in validation} == validation_ids
    with pytest.raises(EvalError, match="held-out rows only"):
        export_prompts(tmp_path / "three", 100, "train")
    export(tmp_path / "w.db", tmp_path / "all-train", "medec-cot", "--split-ratio", "1")
    with pytest.raises(EvalError, match="no validation rows to evaluate on"):
        export_prompts(tmp_path / "all-train", 100)


def test_credentialed_prompts_never_go_to_a_remote_endpoint(
    medec_export, tmp_path: Path, monkeypatch
) -> None:
    """An export of credentialed data (as mimic-dialogue's are) keeps the data-use guard: the
    refusal comes from the URL alone, before anything is sent."""
    from click.testing import CliRunner

    from medstore.cli import cli

    monkeypatch.setenv("OPENAI_API_KEY", "test")
    export_dir, _ = medec_export
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "credentialed_source": True}))
    (copy / "validation.jsonl").write_text((copy / "train.jsonl").read_text())
    result = CliRunner().invoke(cli, [
        "eval", "--task", "structure", "--data", str(copy), "--base-url",
        "https://llm.example.org/v1", "--model", "m", "--db", str(tmp_path / "w.db"),
    ])  # fmt: skip
    assert result.exit_code == 1 and "llm.example.org" in result.output
    assert len(result.output.strip().splitlines()) == 1
