"""Structured output against each server's documented behaviour (tests/dialects.py): what
medstore sends, what `auto` learns from a refusal, what the log records, and the cache key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from . import dialects
from .dialects import Emulation
from .fake_batch import serve_batch
from .fakeserver import FakeLLMServer, Reply, serve
from .teachers import consult_stage, consult_teacher, write_scenarios

JSON_STAGES = ("profile", "dialogue", "expert")


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    return write_scenarios(tmp_path / "scenarios.json", 6)


def run(server: FakeLLMServer, db: Path, source: Path, *extra: str, ollama: bool = False):
    teacher = (
        ["--backend", "ollama", "--base-url", server.url]
        if ollama
        else ["--base-url", server.openai_base_url]
    )
    args = [
        "run",
        "--recipe",
        "consult",
        "--source",
        str(source),
        *teacher,
        "--model",
        "m",
        "--db",
        str(db),
        "--retry-base-delay",
        "0",
        "--no-progress",
        *extra,
    ]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def json_requests(server: FakeLLMServer) -> list[dict[str, Any]]:
    """The bodies of the server's consult JSON-stage requests (the probe left out)."""
    bodies = [r.json for r in server.chat_requests() if not dialects.is_probe(r.json)]
    return [b for b in bodies if consult_stage(b) in JSON_STAGES]


def probes(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [r.json for r in server.chat_requests() if dialects.is_probe(r.json)]


def decisions(db: Path) -> list[dict[str, Any]]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'structured_output_decision'"
            " ORDER BY id"
        )
    return [json.loads(row["payload_json"]) for row in rows]


def request_events(db: Path, stage: str) -> list[dict[str, Any]]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'llm_request' AND stage = ?"
            " ORDER BY id",
            (stage,),
        )
    return [json.loads(row["payload_json"]) for row in rows]


def task_states(db: Path) -> dict[str, int]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query("SELECT state, count(*) AS n FROM task_state GROUP BY state")
    return {row["state"]: row["n"] for row in rows}


def test_openai_auto_sends_json_schema_and_records_it(db_path, scenarios) -> None:
    with serve() as server:
        dialects.OPENAI.install(server)
        result = run(server, db_path, scenarios, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "2 accepted" in result.output
    bodies = json_requests(server)
    assert len(bodies) == 6 and not probes(server)
    fmt = bodies[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "PatientProfile"
    assert fmt["json_schema"]["schema"]["title"] == "PatientProfile"
    [decision] = decisions(db_path)
    assert decision["rule"] == "auto_first_choice" and decision["mode"] == "json_schema"
    assert decision["constrained"] is True and decision["requested"] == "auto"
    profile = request_events(db_path, "profile")[0]
    assert profile["params"]["structured_output"] == "json_schema"
    assert profile["response_schema"]["title"] == "PatientProfile"
    reasoning = request_events(db_path, "reasoning")[0]
    assert "structured_output" not in reasoning["params"] and reasoning["response_schema"] is None
    with Warehouse(db_path) as warehouse:
        modes = warehouse.query("SELECT DISTINCT stage, structured_output FROM llm_calls")
    assert {row["stage"]: row["structured_output"] for row in modes} == {
        "profile": "json_schema",
        "dialogue": "json_schema",
        "reasoning": None,
        "expert": "json_schema",
    }


def test_llama_cpp_python_refusal_is_learnt_once_and_checked_by_a_probe(db_path, scenarios):
    with serve() as server:
        dialects.LLAMA_CPP_PYTHON.install(server)
        result = run(server, db_path, scenarios, "--limit", "3", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert "3 accepted" in result.output and "0 failed" in result.output
    bodies = json_requests(server)
    refused = [b for b in bodies if b["response_format"]["type"] == "json_schema"]
    assert len(refused) == 1  # learnt from the first refusal, never retried
    assert len(probes(server)) == 1
    assert all(b["response_format"]["type"] == "json_object" for b in bodies[1:])
    assert all(b["response_format"]["schema"]["title"] for b in bodies[1:])
    first, second = decisions(db_path)
    assert first["mode"] == "json_schema" and second["rule"] == "auto_after_refusal"
    assert second["mode"] == "json_object_schema" and second["constrained"] is True
    assert [t["outcome"] for t in second["tried"]] == ["refused", "enforced"]
    assert second["tried"][0]["status"] == 500
    assert "Input should be 'text' or 'json_object'" in second["tried"][0]["message"]
    with Warehouse(db_path) as warehouse:
        errors = warehouse.query(
            "SELECT json_extract(payload_json, '$.kind') AS kind,"
            " json_extract(payload_json, '$.will_retry') AS will_retry FROM events"
            " WHERE event_type = 'llm_error'"
        )
    assert errors == [{"kind": "structured_output_refused", "will_retry": 0}]


def test_concurrent_refusals_move_the_run_once(db_path, scenarios) -> None:
    with serve(latency_s=0.05) as server:
        dialects.LLAMA_CPP_PYTHON.install(server)
        result = run(server, db_path, scenarios, "--limit", "6", "--concurrency", "4")
    assert result.exit_code == 0, result.output
    assert "6 accepted" in result.output
    assert len(probes(server)) == 1 and len(decisions(db_path)) == 2
    refused = [b for b in json_requests(server) if b["response_format"]["type"] == "json_schema"]
    assert 1 <= len(refused) <= 4  # at most the calls already in flight; none sent twice
    assert task_states(db_path) == {"accepted": 6}


def test_a_configured_dialect_the_server_refuses_fails_fast(db_path, scenarios) -> None:
    with serve() as server:
        dialects.LLAMA_CPP_PYTHON.install(server)
        result = run(
            server,
            db_path,
            scenarios,
            "--limit",
            "3",
            "--concurrency",
            "1",
            "--structured-output",
            "json_schema",
        )
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: every task failed: 3 failed (3 structured_output_refused)")
    assert "json_schema refused: HTTP 500" in last and "'text' or 'json_object'" in last
    assert last.endswith("(--structured-output auto finds a dialect the server accepts)")
    assert len(server.chat_requests()) == 1  # the refusal is final: nothing is sent again
    assert [d["rule"] for d in decisions(db_path)] == ["configured", "configured_refused"]
    assert task_states(db_path) == {"failed": 3}


def test_json_object_without_a_schema_is_unconstrained_on_llama_cpp_python(db_path, scenarios):
    """Issue 14's bad path: JSON mode without the schema lets a small model answer any JSON."""
    with serve() as server:
        dialects.LLAMA_CPP_PYTHON.install(server)
        result = run(
            server, db_path, scenarios, "--limit", "1", "--structured-output", "json_object"
        )
    assert result.exit_code == 0, result.output
    assert "1 rejected" in result.output
    body = json_requests(server)[0]
    assert body["response_format"] == {"type": "json_object"}
    assert "JSON schema" in body["messages"][0]["content"]  # the schema went in the prompt
    event = request_events(db_path, "profile")[0]
    assert event["response_schema"] is None  # nothing constrained the output
    assert event["params"]["structured_output"] == "json_object"
    with Warehouse(db_path) as warehouse:
        errors = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'sample_rejected'"
        )
    assert "age: Field required" in json.loads(errors[0]["payload_json"])["errors"][0]


@pytest.mark.parametrize("mode", ["auto", "json_schema", "json_object_schema"])
def test_llama_cpp_server_takes_json_schema_and_json_object_schema(db_path, scenarios, mode):
    with serve() as server:
        dialects.LLAMA_SERVER.install(server)
        result = run(server, db_path, scenarios, "--limit", "1", "--structured-output", mode)
    assert result.exit_code == 0, result.output
    assert "1 accepted" in result.output and not probes(server)
    expected = "json_object" if mode == "json_object_schema" else "json_schema"
    assert {b["response_format"]["type"] for b in json_requests(server)} == {expected}


def test_vllm_auto_uses_json_schema(db_path, scenarios) -> None:
    with serve() as server:
        dialects.VLLM.install(server)
        result = run(server, db_path, scenarios, "--limit", "1")
    assert "1 accepted" in result.output, result.output
    assert {b["response_format"]["type"] for b in json_requests(server)} == {"json_schema"}


def test_vllm_guided_json_is_enforced_before_0_12_and_ignored_after(db_path, tmp_path, scenarios):
    with serve() as server:
        dialects.VLLM_LEGACY.install(server)
        result = run(
            server, db_path, scenarios, "--limit", "1", "--structured-output", "guided_json"
        )
    assert "1 accepted" in result.output, result.output
    body = json_requests(server)[0]
    assert body["guided_json"]["title"] == "PatientProfile" and "response_format" not in body
    # vLLM 0.12 removed guided_json and ignores unknown fields: nothing constrains the output,
    # and validation catches it (which is why auto never picks guided_json).
    with serve() as server:
        dialects.VLLM.install(server)
        result = run(
            server,
            tmp_path / "new.db",
            scenarios,
            "--limit",
            "1",
            "--structured-output",
            "guided_json",
        )
    assert "1 rejected" in result.output, result.output


def test_deepseek_auto_ends_on_json_mode_with_the_schema_in_the_prompt(db_path, scenarios):
    with serve() as server:
        dialects.DEEPSEEK.install(server)
        result = run(server, db_path, scenarios, "--limit", "2", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert "2 accepted" in result.output
    last = decisions(db_path)[-1]
    assert last["mode"] == "json_object" and last["constrained"] is False
    assert [(t["mode"], t["outcome"]) for t in last["tried"]] == [
        ("json_schema", "refused"),
        ("json_object_schema", "ignored"),  # accepted, but the probe's answer ignored the schema
    ]
    assert last["tried"][1]["probe_output"] == dialects.FREE_PROBE_ANSWER
    sent = json_requests(server)[1:]
    assert all(b["response_format"] == {"type": "json_object"} for b in sent)
    assert all("JSON schema" in b["messages"][0]["content"] for b in sent)
    event = request_events(db_path, "profile")[-1]
    assert event["params"]["structured_output"] == "json_object"
    assert event["response_schema"] is None


def test_ollama_native_sends_the_schema_as_format(db_path, scenarios) -> None:
    with serve() as server:
        dialects.OLLAMA.install(server)
        result = run(server, db_path, scenarios, "--limit", "1", ollama=True)
    assert "1 accepted" in result.output, result.output
    bodies = [r.json for r in server.requests if r.path == "/api/chat"]
    formats = [b.get("format") for b in bodies]
    assert [f["title"] for f in formats if f] == ["PatientProfile", "Dialogue", "ExpertOutput"]


def test_ollama_before_0_5_refuses_a_schema_format_and_gets_json_mode(db_path, scenarios):
    old = Emulation(
        "ollama<0.5",
        dialects.ollama_old_refusal,
        dialects.ollama_enforced,
        follows_prompt_schema=True,
    )
    with serve() as server:
        old.install(server)
        result = run(server, db_path, scenarios, "--limit", "1", ollama=True)
    assert "1 accepted" in result.output, result.output
    last = decisions(db_path)[-1]
    assert last["mode"] == "json_object" and last["tried"][0]["mode"] == "format"
    bodies = [r.json for r in server.requests if r.path == "/api/chat"]
    assert bodies[-1]["format"] == "json" and "JSON schema" in bodies[-1]["messages"][0]["content"]


def test_ollama_v1_enforces_json_schema(db_path, scenarios) -> None:
    with serve() as server:
        dialects.OLLAMA_V1.install(server)
        result = run(server, db_path, scenarios, "--limit", "1")
    assert "1 accepted" in result.output, result.output
    assert {b["response_format"]["type"] for b in json_requests(server)} == {"json_schema"}


def test_none_sends_no_structured_field(db_path, scenarios) -> None:
    with serve() as server:
        dialects.OPENAI.install(server)
        run(server, db_path, scenarios, "--limit", "1", "--structured-output", "none")
    body = json_requests(server)[0]
    assert "response_format" not in body and "JSON schema" in body["messages"][0]["content"]
    assert request_events(db_path, "profile")[0]["response_schema"] is None


def test_the_cache_key_includes_the_dialect(db_path, scenarios) -> None:
    def failing_expert(request: dict[str, Any]) -> str | Reply:
        return Reply(status=503) if consult_stage(request) == "expert" else consult_teacher(request)

    with serve() as server:
        server.set_responder(failing_expert)
        args = (server, db_path, scenarios, "--limit", "1", "--retries", "0")
        run(*args, "--structured-output", "json_schema")
        result = run(*args, "--structured-output", "none")
        # Only reasoning (a text stage, same prompt) replays; profile and dialogue, sent
        # without a schema now, are new requests.
        assert "1 cache replays" in result.output, result.output
        server.set_responder(consult_teacher)
        result = run(*args, "--structured-output", "json_schema")
    assert "1 accepted" in result.output and "3 cache replays" in result.output, result.output


def test_response_format_is_a_deprecated_alias(db_path, scenarios) -> None:
    with serve() as server:
        dialects.OPENAI.install(server)
        run(server, db_path, scenarios, "--limit", "1", "--response-format", "json_object")
        result = run(
            server,
            db_path,
            scenarios,
            "--response-format",
            "json_object",
            "--structured-output",
            "json_schema",
        )
    assert json_requests(server)[0]["response_format"] == {"type": "json_object"}
    assert result.exit_code == 1
    assert "--response-format json_object contradicts --structured-output json_schema" in (
        result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--backend", "ollama", "--structured-output", "json_schema"],
            "--structured-output json_schema is not a dialect the ollama backend speaks",
        ),
        (
            [
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--structured-output",
                "format",
            ],
            "--structured-output format is not a dialect the openai backend speaks",
        ),
        (
            ["--backend", "local", "--structured-output", "json_object"],
            "the embedded model decodes JSON stages under their schema itself",
        ),
    ],
)
def test_a_dialect_the_backend_cannot_speak_is_one_line(db_path, args, message) -> None:
    result = CliRunner().invoke(cli, ["run", *args, "--db", str(db_path)])
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not db_path.exists()


def test_a_batch_run_sends_json_schema_bodies(db_path, scenarios) -> None:
    with serve_batch(consult_teacher) as api:
        args = [
            "run",
            "--recipe",
            "consult",
            "--source",
            str(scenarios),
            "--base-url",
            api.base_url,
            "--model",
            "m",
            "--db",
            str(db_path),
            "--batch",
            "--batch-poll",
            "0.05",
            "--limit",
            "2",
            "--no-progress",
        ]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        lines = api.request_lines()
    assert result.exit_code == 0 and "2 accepted" in result.output, result.output
    formats = [line["body"].get("response_format") for line in lines]
    assert {f["type"] for f in formats if f} == {"json_schema"}
    assert [d["mode"] for d in decisions(db_path)] == ["json_schema"]


def test_a_probe_lost_to_a_server_error_keeps_the_dialect_unverified(db_path, scenarios):
    def probe_fails(request: dict[str, Any]) -> Reply | None:
        if dialects.is_probe(request):
            return Reply(content="busy", status=503)
        return dialects.llama_cpp_python_refusal(request)

    with serve() as server:
        dialects.LLAMA_CPP_PYTHON.install(server)
        server.fault_plan = probe_fails
        result = run(server, db_path, scenarios, "--limit", "1")
    assert "1 accepted" in result.output, result.output
    last = decisions(db_path)[-1]
    assert last["mode"] == "json_object_schema"
    assert [t["outcome"] for t in last["tried"]] == ["refused", "probe_failed"]
    assert len(probes(server)) == 1  # the probe itself is not retried
