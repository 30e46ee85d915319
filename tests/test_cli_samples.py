"""`samples`, `status` and `report` as a curator reads them: sample ids with summaries under
filters, as text, JSON or CSV, and tables without a Python repr anywhere."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.review import record_review

from .teachers_serve import build_warehouse, copy_warehouse


@pytest.fixture(scope="module")
def source_db(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("cli-samples"))


@pytest.fixture
def db(source_db, tmp_path) -> Path:
    return copy_warehouse(source_db, tmp_path / "warehouse.db")


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def samples_json(db: Path, *args: str) -> list[dict]:
    result = run_cli("samples", "--db", str(db), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_samples_lists_ids_and_summaries(db) -> None:
    result = run_cli("samples", "--db", str(db))
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[0].split() == [
        "sample", "recipe", "label", "review", "gate", "summary"
    ]  # fmt: skip
    assert len(lines) == 2 + 5
    assert "cardiology · 8 turns · patient: A pressing pain in my chest" in result.output
    listed = samples_json(db)
    assert {row["review_state"] for row in listed} == {"unreviewed"}
    assert all(row["sample_id"].startswith("s-") and row["summary"] for row in listed)


def test_samples_filters(db) -> None:
    assert len(samples_json(db, "--label", "high")) == 2
    assert len(samples_json(db, "--limit", "3")) == 3
    assert len(samples_json(db, "--limit", "0")) == 5
    assert samples_json(db, "--recipe", "medec-safe") == []
    [repaired] = samples_json(db, "--gate", "expert: the output is not valid JSON")
    assert repaired["task_key"] == "consult:case-01:v1"
    target = samples_json(db)[0]["sample_id"]
    record_review(db, target, "reject", "bad", "dr-kim")
    assert [row["sample_id"] for row in samples_json(db, "--state", "rejected")] == [target]
    assert len(samples_json(db, "--state", "unreviewed")) == 4


def test_samples_as_csv(db) -> None:
    result = run_cli("samples", "--db", str(db), "--csv", "--limit", "2")
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert len(table) == 2 and table[0]["sample_id"].startswith("s-")
    assert set(table[0]) >= {"sample_id", "recipe", "label", "review_state", "summary"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "--csv"], "say --json or --csv, not both"),
        (["--state", "maybe"], "Invalid value for '--state'"),
        (["--limit", "-1"], "Invalid value for '--limit'"),
    ],
)
def test_samples_refuses_bad_options(db, args, message) -> None:
    result = CliRunner().invoke(cli, ["samples", "--db", str(db), *args])
    assert result.exit_code == 2 and message in result.output


def test_samples_on_a_missing_warehouse(tmp_path) -> None:
    result = run_cli("samples", "--db", str(tmp_path / "nope.db"))
    assert result.exit_code == 1 and "no such warehouse" in result.output
    assert not (tmp_path / "nope.db").exists()


def test_status_and_report_print_tables_not_reprs(db) -> None:
    status = run_cli("status", "--db", str(db)).output
    assert "recipe   samples  accepted  rejected  failed  pending" in status
    assert "consult        5         5         1       0        0" in status
    assert "expert: invalid after 2 repairs" in status
    assert "sample ids: python cli.py samples --recipe consult" in status
    for recipe in ("consult", "hierarchical", "medec-safe", "medec-cot", "mimic-dialogue"):
        report = run_cli("report", "--recipe", recipe, "--db", str(db)).output
        for repr_text in ("None", "{}", "[]", "{'", "['"):
            assert repr_text not in report, (recipe, repr_text, report)
    report = run_cli("report", "--recipe", "consult", "--db", str(db)).output
    assert "  accepted  5" in report and "  rejected  1" in report
    as_json = json.loads(run_cli("report", "--recipe", "consult", "--db", str(db), "--json").output)
    assert as_json["tasks"] == {"accepted": 5, "rejected": 1}
