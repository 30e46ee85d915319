"""The `consult` recipe end to end against a real local HTTP server: runs, retries, repairs,
cache replay, resume after kill -9, secrets, and bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from .conftest import REPO
from .fakeserver import Reply, serve
from .teachers import EXPERT, consult_stage, consult_teacher, write_scenarios


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    return write_scenarios(tmp_path / "scenarios.json", 12)


@pytest.fixture
def teacher():
    with serve() as server:
        server.set_responder(consult_teacher)
        yield server


def run_cli(*args: str, env: dict | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result


def run_args(server, db: Path, source: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--recipe",
        "consult",
        "--source",
        str(source),
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


def count(db: Path, sql: str, params: tuple = ()) -> int:
    with Warehouse(db) as warehouse:
        return warehouse.conn.execute(sql, params).fetchone()[0]


def test_run_accepts_every_scenario_with_full_fields(teacher, db_path, scenarios) -> None:
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "5", "--concurrency", "3"))
    assert result.exit_code == 0, result.output
    assert "5 accepted" in result.output
    with Warehouse(db_path) as warehouse:
        samples = warehouse.query("SELECT * FROM samples ORDER BY task_key")
        assert len(samples) == 5
        sample = json.loads(samples[0]["sample_json"])
        assert set(sample) >= {
            "sample_id",
            "case_id",
            "patient_profile",
            "dialogue",
            "expert_output_text",
            "expert_output_json",
            "created_at",
        }
        assert sample["case_id"] == "case-00"
        assert sample["expert_output_json"]["differential_diagnosis"][0]["icd10_code"] == "I21.4"
        calls = warehouse.query("SELECT stage, count(*) AS n FROM llm_calls GROUP BY stage")
        assert {row["stage"]: row["n"] for row in calls} == {
            "profile": 5,
            "dialogue": 5,
            "reasoning": 5,
            "expert": 5,
        }
        summary = warehouse.query("SELECT * FROM run_summary")[0]
        assert summary["accepted"] == 5 and summary["status"] == "completed"
        assert summary["input_tokens"] > 0 and summary["output_tokens"] > 0
        assert warehouse.verify().ok
    assert len(teacher.chat_requests()) == 20


def test_second_run_resumes_and_sends_nothing(teacher, db_path, scenarios) -> None:
    assert run_cli(*run_args(teacher, db_path, scenarios, "--limit", "3")).exit_code == 0
    before = teacher.request_count
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "3"))
    assert "3 already done" in result.output
    assert teacher.request_count == before  # not even the preflight: nothing left to do


def test_retries_429_500_timeout_and_dropped_connection(teacher, db_path, scenarios) -> None:
    teacher.enqueue("", status=429, headers={"Retry-After": "0.2"})
    teacher.enqueue("", status=500)
    teacher.enqueue(Reply(fault="timeout", delay_s=2.0))
    teacher.enqueue(Reply(fault="drop"))
    started = time.perf_counter()
    result = run_cli(
        *run_args(teacher, db_path, scenarios, "--limit", "1", "--timeout", "0.5", "--retries", "4")
    )
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started >= 0.2  # Retry-After was honoured
    with Warehouse(db_path) as warehouse:
        errors = warehouse.query(
            "SELECT json_extract(payload_json, '$.kind') AS kind,"
            " json_extract(payload_json, '$.status') AS status,"
            " json_extract(payload_json, '$.retry_number') AS retry_number,"
            " json_extract(payload_json, '$.retry_after_s') AS retry_after"
            " FROM events WHERE event_type = 'llm_error' ORDER BY id"
        )
        assert [e["kind"] for e in errors] == [
            "rate_limited",
            "server_error",
            "timeout",
            "connection",
        ]
        assert [e["retry_number"] for e in errors] == [0, 1, 2, 3]
        assert errors[0]["retry_after"] == 0.2 and errors[1]["status"] == 500
        assert warehouse.query("SELECT count(*) AS n FROM samples")[0]["n"] == 1


def test_retries_exhausted_fail_the_task_and_resume_redoes_it(teacher, db_path, scenarios) -> None:
    for _ in range(2):
        teacher.enqueue("", status=503)
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1", "--retries", "1"))
    assert "1 failed" in result.output
    with Warehouse(db_path) as warehouse:
        state = warehouse.query("SELECT state, reason FROM task_state")[0]
        assert state == {"state": "failed", "reason": "server_error"}
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1"))
    assert "1 accepted" in result.output


def test_repair_loop_invalid_json_then_valid(teacher, db_path, scenarios) -> None:
    def responder(request):
        if consult_stage(request) == "expert" and len(request["messages"]) == 2:
            return '{"differential_diagnosis": [ this is not json'
        return consult_teacher(request)

    teacher.set_responder(responder)
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1"))
    assert "1 accepted" in result.output
    with Warehouse(db_path) as warehouse:
        kinds = [
            row["event_type"]
            for row in warehouse.query(
                "SELECT event_type FROM events WHERE stage = 'expert' ORDER BY id"
            )
        ]
        assert "parse_failed" in kinds and "repair_requested" in kinds
        repair = warehouse.query(
            "SELECT attempt, payload_json FROM events WHERE event_type = 'llm_request'"
            " AND stage = 'expert' ORDER BY id"
        )
        assert [row["attempt"] for row in repair] == [0, 1]
        params = json.loads(repair[1]["payload_json"])["params"]
        assert params["temperature"] == 0.3
    repair_request = next(r for r in teacher.chat_requests() if len(r.json["messages"]) == 4)
    assert "not valid JSON" in repair_request.json["messages"][3]["content"]


def test_unknown_icd_code_is_repaired_then_rejected(teacher, db_path, scenarios) -> None:
    bad = json.dumps(
        {
            **EXPERT,
            "differential_diagnosis": [
                {**EXPERT["differential_diagnosis"][0], "icd10_code": "Z99.999"}
            ],
        }
    )

    def responder(request):
        return bad if consult_stage(request) == "expert" else consult_teacher(request)

    teacher.set_responder(responder)
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1"))
    assert "1 rejected" in result.output
    with Warehouse(db_path) as warehouse:
        state = warehouse.query("SELECT state, reason FROM task_state")[0]
        assert state["state"] == "rejected" and state["reason"].startswith("expert")
        errors = json.loads(
            warehouse.query("SELECT payload_json FROM events WHERE event_type = 'sample_rejected'")[
                0
            ]["payload_json"]
        )["errors"]
        assert "'Z99.999' is not an ICD-10-CM code" in errors[0]
        assert (
            count(db_path, "SELECT count(*) FROM events WHERE event_type='repair_requested'") == 2
        )


def test_cache_replays_finished_stages_without_http(teacher, db_path, scenarios) -> None:
    def failing_expert(request):
        if consult_stage(request) == "expert":
            return Reply(status=500)
        return consult_teacher(request)

    teacher.set_responder(failing_expert)
    run_cli(*run_args(teacher, db_path, scenarios, "--limit", "2", "--retries", "0"))
    teacher.set_responder(consult_teacher)
    teacher.requests.clear()
    result = run_cli(*run_args(teacher, db_path, scenarios, "--limit", "2"))
    assert "2 accepted" in result.output and "6 cache replays" in result.output
    stages = sorted(consult_stage(r.json) for r in teacher.chat_requests())
    assert stages == ["expert", "expert"]  # profile, dialogue, reasoning came from the log
    assert count(db_path, "SELECT count(*) FROM events WHERE event_type = 'cache_replay'") == 6


def test_no_cache_forces_new_calls(teacher, db_path, scenarios) -> None:
    def failing_expert(request):
        return Reply(status=500) if consult_stage(request) == "expert" else consult_teacher(request)

    teacher.set_responder(failing_expert)
    run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1", "--retries", "0"))
    teacher.set_responder(consult_teacher)
    teacher.requests.clear()
    run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1", "--no-cache"))
    assert len(teacher.chat_requests()) == 4


def test_api_key_never_reaches_the_warehouse(teacher, db_path, scenarios) -> None:
    secret = "sk-test-SECRET-0123456789abcdef"
    result = run_cli(
        *run_args(teacher, db_path, scenarios, "--limit", "2"), env={"OPENAI_API_KEY": secret}
    )
    assert result.exit_code == 0
    assert teacher.chat_requests()[0].headers["authorization"] == f"Bearer {secret}"
    data = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert secret.encode() not in data


def test_provenance_and_status_commands(teacher, db_path, scenarios) -> None:
    run_cli(*run_args(teacher, db_path, scenarios, "--limit", "1"))
    with Warehouse(db_path) as warehouse:
        sample_id = warehouse.query("SELECT sample_id FROM samples")[0]["sample_id"]
    text = run_cli("provenance", sample_id, "--db", str(db_path)).output
    for needle in (
        "task_started",
        "llm_request",
        "llm_response",
        "validation_verdict",
        "sample_accepted",
        "--- system ---",
        "--- raw output ---",
    ):
        assert needle in text
    events = json.loads(run_cli("provenance", sample_id, "--db", str(db_path), "--json").output)
    assert [e["stage"] for e in events if e["event_type"] == "llm_request"] == [
        "profile",
        "dialogue",
        "reasoning",
        "expert",
    ]
    status = json.loads(run_cli("status", "--db", str(db_path), "--json").output)
    assert status["recipes"]["consult"]["samples"] == 1
    verify = run_cli("verify", "--db", str(db_path))
    assert verify.exit_code == 0 and verify.output.startswith("ok:")


def test_kill_9_then_resume_gives_exactly_n_samples(tmp_path, scenarios) -> None:
    db = tmp_path / "killed.db"
    n = 12
    with serve(latency_s=0.15) as server:
        server.set_responder(consult_teacher)
        args = [
            sys.executable,
            str(REPO / "cli.py"),
            *run_args(server, db, scenarios, "--limit", str(n), "--concurrency", "2"),
        ]
        env = {**os.environ, "OPENAI_API_KEY": "test"}
        process = subprocess.Popen(
            args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.time() + 60
        accepted = 0
        while time.time() < deadline and accepted < 3:
            time.sleep(0.2)
            if db.exists():
                try:
                    accepted = count_readonly(
                        db, "SELECT count(*) FROM events WHERE event_type = 'sample_accepted'"
                    )
                except sqlite3.OperationalError:
                    accepted = 0
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 3 <= accepted < n
        resumed = subprocess.run(
            args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert resumed.returncode == 0, resumed.stderr
    with Warehouse(db) as warehouse:
        assert warehouse.query("SELECT count(*) AS n FROM samples")[0]["n"] == n
        per_task = warehouse.query(
            "SELECT task_key, count(*) AS n FROM events WHERE event_type = 'sample_accepted'"
            " GROUP BY task_key"
        )
        assert len(per_task) == n and all(row["n"] == 1 for row in per_task)
        assert warehouse.verify().ok


def count_readonly(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


# Bad input: one line, non-zero exit, nothing written. -------------------------------------------
def events_in(db: Path) -> int:
    if not db.exists():
        return 0
    return count_readonly(db, "SELECT count(*) FROM events")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[{not json", "not valid JSON"),
        (
            json.dumps([{"id": "a", "specialty": "x", "sex": "male", "symptoms": ["s"]}]),
            "scenario [0]: age: Field required",
        ),
        (
            json.dumps(
                [{"id": "a", "specialty": "x", "age": "old", "sex": "male", "symptoms": ["s"]}]
            ),
            "scenario [0]: age: Input should be a valid integer",
        ),
        (json.dumps({"id": "a"}), "expected a JSON array"),
    ],
)
def test_malformed_scenarios_file(teacher, db_path, tmp_path, content, expected) -> None:
    source = tmp_path / "bad.json"
    source.write_text(content)
    result = CliRunner().invoke(cli, run_args(teacher, db_path, source))
    assert result.exit_code == 1
    assert expected in result.output and str(source) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert events_in(db_path) == 0 and teacher.request_count == 0


def test_unknown_recipe(db_path) -> None:
    result = CliRunner().invoke(cli, ["run", "--recipe", "nope", "--db", str(db_path)])
    assert result.exit_code == 1 and "unknown recipe 'nope'" in result.output
    assert events_in(db_path) == 0


def test_unknown_backend(db_path) -> None:
    result = CliRunner().invoke(cli, ["run", "--backend", "nope", "--db", str(db_path)])
    assert result.exit_code == 2 and "'nope' is not one of" in result.output


def test_unreachable_server(db_path, scenarios) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--source",
            str(scenarios),
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--db",
            str(db_path),
        ],
    )
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9/v1" in result.output
    assert events_in(db_path) == 0


def test_missing_api_key_for_remote_endpoint(db_path, scenarios) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = CliRunner(env={"OPENAI_API_KEY": None}).invoke(
        cli,
        [
            "run",
            "--source",
            str(scenarios),
            "--base-url",
            "https://api.example.com/v1",
            "--db",
            str(db_path),
        ],
        env=env,
    )
    assert result.exit_code == 1
    assert "OPENAI_API_KEY is not set: https://api.example.com/v1 needs an API key" in result.output
    assert events_in(db_path) == 0


def test_ollama_native_backend(db_path, scenarios) -> None:
    with serve() as server:
        server.set_responder(consult_teacher)
        result = run_cli(
            "run",
            "--recipe",
            "consult",
            "--source",
            str(scenarios),
            "--backend",
            "ollama",
            "--base-url",
            server.url,
            "--model",
            "llama3.1",
            "--db",
            str(db_path),
            "--limit",
            "2",
            "--no-progress",
        )
        assert "2 accepted" in result.output, result.output
        paths = {r.path for r in server.requests}
        assert "/api/chat" in paths
        body = next(r.json for r in server.requests if r.path == "/api/chat")
        assert body["stream"] is False and body["options"]["temperature"] == 0.7
        assert body["format"]["title"] == "PatientProfile"
