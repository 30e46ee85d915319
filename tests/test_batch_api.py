"""Batch API mode against a fake Batch API: one job per stage round, half price, only failed
requests resubmitted, and a run killed between submit and ingest never submits twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm import prices
from medstore.warehouse.store import Warehouse

from .conftest import REPO
from .fake_batch import serve_batch
from .teachers import consult_teacher
from .test_consult_run import write_scenarios


@pytest.fixture(autouse=True)
def fresh_price_table():
    yield
    prices._price_files.clear()
    prices.price_table.cache_clear()


@pytest.fixture
def api():
    with serve_batch(consult_teacher) as server:
        yield server


def batch_args(api, db: Path, source: Path, *extra: str) -> list[str]:
    return [
        "run", "--recipe", "consult", "--source", str(source), "--base-url", api.base_url,
        "--model", "fake-model", "--db", str(db), "--batch", "--batch-poll", "0.05",
        "--concurrency", "100", "--retry-base-delay", "0", "--no-progress", *extra,
    ]  # fmt: skip


def events(db: Path, event_type: str) -> list[dict]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = ? ORDER BY id", (event_type,)
        )
    return [json.loads(row["payload_json"]) for row in rows]


def states(db: Path) -> Counter:
    with Warehouse(db) as warehouse:
        return Counter(row["state"] for row in warehouse.query("SELECT state FROM task_state"))


def test_a_batch_run_sends_one_job_per_stage_at_half_price(api, tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 5)
    db = tmp_path / "w.db"
    price_file = tmp_path / "prices.json"
    price_file.write_text(json.dumps({"fake-model": [1.0, 2.0]}))
    result = CliRunner().invoke(cli, batch_args(api, db, source, "--prices", str(price_file)))
    assert result.exit_code == 0, result.output
    assert states(db) == {"accepted": 5}
    assert api.created == 4  # profile, dialogue, reasoning, expert: each a job of 5 requests
    assert [len(lines) for lines in api.batch_requests.values()] == [5, 5, 5, 5]
    submitted, finished = events(db, "batch_submitted"), events(db, "batch_finished")
    assert [e["batch_id"] for e in submitted] == [e["batch_id"] for e in finished]
    assert all(e["status"] == "completed" and e["succeeded"] == 5 for e in finished)
    for response in events(db, "llm_response"):
        full = prices.cost_usd("fake-model", response["input_tokens"], response["output_tokens"])
        assert response["cost_usd"] == pytest.approx(full / 2)


def test_only_failed_requests_are_resubmitted(api, tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 4)
    db = tmp_path / "w.db"
    api.fail_next(2)
    result = CliRunner().invoke(cli, batch_args(api, db, source))
    assert result.exit_code == 0, result.output
    assert states(db) == {"accepted": 4}
    first = next(iter(api.batch_requests.values()))
    failed = {line["custom_id"] for line in first[:2]}
    sent = Counter(line["custom_id"] for line in api.request_lines())
    # The two failures went again (next to the other tasks' next stage); nothing else twice.
    assert {custom_id for custom_id, n in sent.items() if n > 1} == failed
    assert all(sent[custom_id] == 2 for custom_id in failed)
    errors = events(db, "llm_error")
    assert [e["kind"] for e in errors] == ["batch_item_failed"] * 2


def test_a_crash_between_submit_and_ingest_never_submits_twice(api, tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 4)
    db = tmp_path / "w.db"
    api.hold()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), *batch_args(api, db, source)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (db.exists() and events(db, "batch_submitted")):
            assert time.monotonic() < deadline, "the run never recorded its batch"
            assert process.poll() is None
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # the job is at the API, its answers are not
    finally:
        process.wait()
    assert api.created == 1 and not events(db, "batch_finished")
    api.release()
    result = CliRunner().invoke(cli, batch_args(api, db, source))
    assert result.exit_code == 0, result.output
    assert states(db) == {"accepted": 4}
    assert api.created == 4  # the first stage's job was polled again, not submitted again
    custom_ids = Counter(line["custom_id"] for line in api.request_lines())
    assert max(custom_ids.values()) == 1
    with Warehouse(db) as warehouse:
        assert warehouse.verify().ok


def test_batch_needs_an_openai_compatible_backend(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--backend", "ollama", "--batch", "--db", str(tmp_path / "w.db")]
    )
    assert result.exit_code == 1
    assert "--batch needs an OpenAI-compatible backend" in result.output
