"""`lineage` refuses what it cannot follow, in one line (the whole chain, from a real training
run, is checked in test_adapter_card)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_a_folder_without_a_training_manifest(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    Warehouse(db).close()
    (tmp_path / "adapter").mkdir()
    result = invoke("lineage", str(tmp_path / "adapter"), "--db", str(db))
    assert result.exit_code == 1 and "no training_manifest.json" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = invoke("lineage", str(tmp_path / "missing"), "--db", str(db))
    assert result.exit_code == 1 and "no such folder" in result.output


def test_a_run_the_warehouse_does_not_hold(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    Warehouse(db).close()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "training_manifest.json").write_text(json.dumps({"training_run_id": "t-x"}))
    result = invoke("lineage", str(adapter), "--db", str(db))
    assert result.exit_code == 1
    assert f"training run t-x is not in {db}: pass --db" in result.output
    (adapter / "training_manifest.json").write_text("{not json")
    result = invoke("lineage", str(adapter), "--db", str(db))
    assert result.exit_code == 1 and "not JSON" in result.output


def test_help_has_examples() -> None:
    result = invoke("lineage", "--help")
    assert result.exit_code == 0 and "python cli.py lineage runs/consult-lora --sample" in (
        result.output
    )
