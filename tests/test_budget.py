"""Budgets and estimates: --max-cost stops a run before it passes the cap, --dry-run estimates
calls, tokens and cost without sending or writing anything, --prices adds models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm import prices
from medstore.llm.openai_backend import OpenAIBackend
from medstore.pipeline.runner import Runner, RunOptions
from medstore.recipes.consult import ConsultRecipe
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import consult_teacher
from .test_consult_run import run_args, write_scenarios

# Dear on purpose, so that a few calls cost dollars: the fake server counts words as tokens.
FAKE_PRICES = {"fake-model": [2000.0, 8000.0]}


@pytest.fixture(autouse=True)
def fresh_price_table():
    yield
    prices._price_files.clear()
    prices.price_table.cache_clear()


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(FAKE_PRICES))
    return path


@pytest.fixture
def teacher():
    with serve() as server:
        server.set_responder(consult_teacher)
        yield server


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def runs(db: Path) -> list[dict]:
    with Warehouse(db) as warehouse:
        return warehouse.query("SELECT * FROM run_summary ORDER BY started_utc")


def test_max_cost_stops_before_the_cap_and_a_later_run_finishes(
    teacher, tmp_path: Path, price_file: Path
) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 8)
    db = tmp_path / "w.db"
    common = (*run_args(teacher, db, source), "--prices", str(price_file), "--concurrency", "2")
    result = invoke(*common, "--max-cost", "25")
    assert result.exit_code == 0, result.output
    assert "stopped before passing --max-cost $25" in result.output
    first = runs(db)[0]
    assert first["status"] == "budget_exhausted"
    assert 0 < first["cost_usd"] <= 25
    assert 0 < first["accepted"] < 8
    with Warehouse(db) as warehouse:
        states = warehouse.query("SELECT state, reason FROM task_state")
    assert {"failed", "budget_exhausted"} <= {s["state"] for s in states} | {
        s["reason"] for s in states
    }
    # Every call the first run paid for was answered: nothing paid was thrown away.
    calls_sent = len(teacher.chat_requests())
    assert calls_sent == first["llm_responses"]

    result = invoke(*common, "--max-cost", "1000")
    assert result.exit_code == 0, result.output
    second = runs(db)[1]
    assert second["status"] == "completed"
    assert first["accepted"] + second["accepted"] == 8
    assert second["cost_usd"] <= 1000


def test_max_cost_needs_a_price(teacher, tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 2)
    result = invoke(*run_args(teacher, tmp_path / "w.db", source), "--max-cost", "1")
    assert result.exit_code == 1
    assert "--max-cost needs a price for model 'fake-model'" in result.output
    assert not teacher.chat_requests()


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "cannot read prices"), ('{"m": [1]}', "expected [input, output]")],
)
def test_a_bad_price_file_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    result = invoke("run", "--prices", str(path), "--db", str(tmp_path / "w.db"), "--dry-run")
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "w.db").exists()


def test_price_file_accepts_objects_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4o-mini": {"input": 1, "output": 2}, "mine": [3, 4]}))
    prices.use_price_file(str(path))
    assert prices.model_price("gpt-4o-mini") == (1.0, 2.0)
    assert prices.cost_usd("mine", 1_000_000, 1_000_000) == 7.0


def test_dry_run_sends_and_writes_nothing(teacher, tmp_path: Path, price_file: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 5)
    db = tmp_path / "w.db"
    result = invoke(*run_args(teacher, db, source), "--prices", str(price_file), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 5 of 5 tasks to do, ~20 calls" in result.output
    assert "basis: prompt templates" in result.output
    assert not db.exists()
    assert not teacher.requests  # not even the preflight


def test_dry_run_estimate_is_within_ten_percent_of_the_run(
    teacher, tmp_path: Path, price_file: Path
) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 16)
    db = tmp_path / "w.db"
    common = (*run_args(teacher, db, source), "--prices", str(price_file))
    assert invoke(*common, "--limit", "3").exit_code == 0  # a pilot: the estimate's basis
    before = len(teacher.chat_requests())
    result = invoke(*common, "--dry-run")
    assert "dry run: 13 of 16 tasks to do" in result.output
    assert "averages of 3 finished tasks" in result.output
    assert len(teacher.chat_requests()) == before

    backend = OpenAIBackend("fake-model", teacher.openai_base_url)
    prices.use_price_file(str(price_file))
    with Warehouse(db) as warehouse:
        estimate = Runner(warehouse, ConsultRecipe(), backend, RunOptions()).estimate(str(source))
    assert invoke(*common).exit_code == 0
    actual = runs(db)[-1]
    assert estimate.calls == actual["llm_requests"] == 13 * 4
    for key in ("input_tokens", "output_tokens", "cost_usd"):
        assert abs(getattr(estimate, key) - actual[key]) <= 0.10 * actual[key], key
