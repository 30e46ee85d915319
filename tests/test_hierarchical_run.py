"""The `hierarchical` recipe end to end against a real local HTTP server: the shipped sample,
empty answers never sent, repairs quoting the measured violations, fallbacks, and `report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.checks.structure import check_structure
from medstore.cli import cli
from medstore.recipes.hierarchical import HierarchicalRecipe
from medstore.resources import resource_dir
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers_hierarchical import (
    hierarchical_teacher,
    repaired_teacher,
    shallow_teacher,
)

SAMPLE = resource_dir("data") / "consultations_sample.jsonl"


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_args(server, db: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--recipe",
        "hierarchical",
        "--base-url",
        server.openai_base_url,
        "--model",
        "fake-model",
        "--db",
        str(db),
        "--retry-base-delay",
        "0",
        "--no-progress",
        *extra,
    ]


def cli_json(*args: str) -> dict:
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def server():
    with serve() as running:
        yield running


def test_shipped_sample_converts_and_never_sends_empty_answers(server, db_path) -> None:
    server.set_responder(hierarchical_teacher)
    result = run_cli(*run_args(server, db_path, "--concurrency", "4"))
    assert result.exit_code == 0, result.output
    rows = sample_rows()
    usable = [row for row in rows if (row["Doctor"] or "").strip()]
    assert f"{len(usable)} accepted, 0 rejected" in result.output

    requests = server.chat_requests()
    assert len(requests) == len(usable)
    prompts = "\n".join(r.json["messages"][1]["content"] for r in requests)
    for row in rows:
        assert (row["Description"] in prompts) == (row in usable)

    with Warehouse(db_path) as warehouse:
        samples = [json.loads(s["sample_json"]) for s in warehouse.query("SELECT * FROM samples")]
        labels = {s["label"] for s in warehouse.query("SELECT label FROM samples")}
    assert len(samples) == len(usable)
    assert labels == {"low", "medium", "high"}
    by_description = {row["Description"]: row for row in usable}
    for sample in samples:
        original = by_description[sample["Description"]]
        assert set(sample) == {*original, "sample_id", "_original_doctor", "_conversion_success"}
        assert sample["Patient"] == original["Patient"]
        assert sample["Status"] == original["Status"]
        assert sample["_original_doctor"] == original["Doctor"]
        assert sample["_conversion_success"] is True
        assert check_structure(sample["Doctor"], original["Doctor"]).ok

    status = cli_json("status", "--db", str(db_path))["recipes"]["hierarchical"]
    assert status["tasks"] == {"accepted": len(usable)}
    assert status["source_skipped"] == {"doctor answer is empty": 2}

    report = cli_json("report", "--recipe", "hierarchical", "--db", str(db_path))
    assert report["conversion"] == {
        "accepted": len(usable),
        "rejected": 0,
        "success_rate": 1.0,
        "accepted_after_repair": 0,
    }
    assert sum(report["depth_distribution"].values()) == len(usable)
    assert set(report["depth_distribution"]) == {"3"}
    assert max(int(n) for n in report["max_siblings_distribution"]) <= 5
    assert report["source_rows_skipped"] == {"doctor answer is empty": 2}
    assert report["preservation"]["min"] >= 0.6
    assert report["fallbacks"]["rows"] == 0

    text = run_cli("report", "--recipe", "hierarchical", "--db", str(db_path))
    # report prints aligned name/value lines (issue 17), no longer "name: repr".
    assert (
        re.search(r"^  success_rate +1$", text.output, re.M)
        and "depth_distribution:" in text.output
    )


def test_only_empty_answers_make_no_call(server, db_path, tmp_path) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_text(
        "".join(
            json.dumps({"Description": f"q{i}", "Patient": "p", "Doctor": doctor, "Status": "low"})
            + "\n"
            for i, doctor in enumerate([None, "", " \n "])
        )
    )
    result = run_cli(*run_args(server, db_path, "--source", str(source)))
    assert result.exit_code == 0, result.output
    assert server.request_count == 0
    report = cli_json("report", "--recipe", "hierarchical", "--db", str(db_path))
    assert report["source_rows_skipped"] == {"doctor answer is empty": 3}


def test_rejected_rewrite_keeps_the_original_as_a_fallback(server, db_path) -> None:
    server.set_responder(shallow_teacher)
    # --no-cache: the second repair repeats the first one word for word (the teacher repeats
    # itself), and the log would replay it instead of sending it.
    result = run_cli(*run_args(server, db_path, "--limit", "2", "--no-cache"))
    assert result.exit_code == 0, result.output
    assert "0 accepted, 2 rejected" in result.output

    requests = server.chat_requests()
    assert len(requests) == 6  # one rewrite and two repairs per task
    repairs = [r.json["messages"] for r in requests if len(r.json["messages"]) == 4]
    assert len(repairs) == 4
    repair = repairs[0]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "depth: the list is 2 levels deep; it needs at least 3" in repair[3]["content"]

    originals = {row["Description"]: row for row in sample_rows()[:2]}
    with Warehouse(db_path) as warehouse:
        fallbacks = warehouse.query("SELECT * FROM hierarchical_fallbacks ORDER BY created_utc")
        columns = [r["name"] for r in warehouse.query("PRAGMA table_info(hierarchical_fallbacks)")]
        sample_columns = [r["name"] for r in warehouse.query("PRAGMA table_info(samples)")]
        assert warehouse.query("SELECT count(*) AS n FROM samples")[0]["n"] == 0
        rejected = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'sample_rejected'"
        )
    assert columns == sample_columns
    assert len(fallbacks) == 2
    for row in fallbacks:
        sample = json.loads(row["sample_json"])
        original = originals.pop(sample["Description"])
        assert sample["Doctor"] == original["Doctor"]
        assert sample["_original_doctor"] == original["Doctor"]
        assert sample["_conversion_success"] is False
        assert {k: sample[k] for k in ("Description", "Patient", "Status")} == {
            k: original[k] for k in ("Description", "Patient", "Status")
        }
        assert row["sample_id"] == sample["sample_id"] and row["sample_id"].startswith("f-")
        assert row["label"] == original["Status"].split()[0]
        assert row["recipe"] == "hierarchical" and row["task_key"].startswith("hierarchical:c-")
    payload = json.loads(rejected[0]["payload_json"])
    assert payload["reason"] == "rewrite: invalid after 2 repairs"
    assert payload["errors"][0].startswith("depth: ")
    assert payload["fallback_sample_blob"].startswith("b2:")

    report = cli_json("report", "--recipe", "hierarchical", "--db", str(db_path))
    assert report["conversion"]["success_rate"] == 0.0
    assert report["rejection_reasons"] == {"rewrite: invalid after 2 repairs": 2}
    assert report["rejection_violations"] == {"depth": 2}
    assert report["fallbacks"]["rows"] == 2

    # Rejected tasks are finished: running again sends nothing and keeps the fallbacks.
    again = run_cli(*run_args(server, db_path, "--limit", "2"))
    assert "2 already done" in again.output
    assert len(server.chat_requests()) == 6


def test_repair_with_the_violation_quoted_then_accept(server, db_path) -> None:
    server.set_responder(repaired_teacher)
    result = run_cli(*run_args(server, db_path, "--limit", "3"))
    assert "3 accepted, 0 rejected" in result.output, result.output
    assert len(server.chat_requests()) == 6
    report = cli_json("report", "--recipe", "hierarchical", "--db", str(db_path))
    assert report["conversion"]["accepted_after_repair"] == 3
    assert report["rejection_violations"] == {}


def test_label_and_chat_form() -> None:
    recipe = HierarchicalRecipe()
    sample = {
        "Description": "Sore throat",
        "Patient": "It hurts to swallow.",
        "Doctor": "- Assessment: a cold\n  - Care\n    - rest",
        "Status": "Medium Severity",
    }
    assert recipe.label(sample) == "medium"
    assert recipe.label({**sample, "Status": "critical"}) is None
    system, user, assistant = recipe.to_messages(sample)
    assert system["role"] == "system" and "nested list" in system["content"]
    assert user == {"role": "user", "content": "Sore throat\n\nIt hurts to swallow."}
    assert assistant == {"role": "assistant", "content": sample["Doctor"]}
    fallback = {**sample, "Doctor": "Rest and fluids.", "_conversion_success": False}
    system, _, assistant = recipe.to_messages(fallback)
    assert "list" not in system["content"] and assistant["content"] == "Rest and fluids."
