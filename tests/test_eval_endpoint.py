"""`eval` of a model behind an endpoint (the fake server, over real HTTP): through the runner,
cache and log as `run`; resumable, costed, recorded; OpenAI-compatible and Ollama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from .fakeserver import Reply, serve
from .teachers import first_user_message
from .test_medec_source import pair_row, write_medec

CLEAN = ["ms-x-9", "A clean note.", "0 A clean note.", "0", "NA", "-1", "NA", "NA", "NA"]


def critic(request: dict) -> str:
    """A good reviewer: the error of pair_row's notes, CORRECT for the clean one."""
    note = first_user_message(request)
    for drug in ("Aspirin", "Warfarin"):
        if f"{drug} is given." in note:
            return (
                f"<think>{drug} is wrong here</think>\n\nVerdict: ERROR\nError sentence: {drug} "
                "is given.\nCorrection: Heparin is given."
            )
    return "<think>nothing is wrong</think>\n\nVerdict: CORRECT"


@pytest.fixture
def medec(tmp_path: Path) -> Path:
    return write_medec(
        tmp_path / "medec.csv", [pair_row("ms-x-0"), pair_row("ms-x-1", "Warfarin"), CLEAN]
    )


def eval_args(server, medec: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["eval", "--task", "medec-detect", "--data", str(medec), "--base-url",
            server.openai_base_url, "--model", "fake-model", "--db", str(tmp_path / "w.db"),
            "--out", str(tmp_path / "runs"), "--retry-base-delay", "0", *extra]  # fmt: skip


def test_an_api_model_is_scored_costed_and_recorded(
    medec: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake-model": [1.0, 2.0]}))
    with serve() as server:
        server.set_responder(critic)
        result = CliRunner().invoke(
            cli, eval_args(server, medec, tmp_path, "--prices", str(prices), "--json")
        )
        assert result.exit_code == 0, result.output
        asked = {first_user_message(r.json) for r in server.chat_requests()}
    report = json.loads(result.output)
    [score] = report["scores"]
    assert score["role"] == "endpoint" and score["model"] == "fake-model"
    assert score["metrics"]["error_flag_accuracy"] == 1.0
    assert score["metrics"]["error_sentence_accuracy"] == 1.0
    assert score["metrics"]["rouge1_f"] == pytest.approx(1.0)
    assert score["details"]["cost_usd"] > 0 and score["details"]["tokens"] > 0
    assert Path(score["run_file"]).read_text().splitlines() == [
        "ms-x-0 1 1 Heparin is given.", "ms-x-1 1 1 Heparin is given.", "ms-x-9 0 -1 NA",
    ]  # fmt: skip
    assert len(asked) == 3  # each prompt once (a transport retry may repeat one)
    with Warehouse(tmp_path / "w.db") as warehouse:
        events = [row["event_type"] for row in warehouse.query(
            "SELECT event_type FROM events WHERE recipe = 'eval-medec-detect'")]  # fmt: skip
        [result_event] = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'eval_result'"
        )
    assert events.count("llm_request") == 3 and events.count("sample_accepted") == 3
    payload = json.loads(result_event["payload_json"])
    assert payload["role"] == "endpoint" and payload["config"]["run_id"]
    assert payload["run_file_hash"] and payload["counts"]["texts"] == 3


def test_a_stopped_eval_resumes_and_pays_nothing_twice(
    medec: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    with serve() as server:
        server.set_responder(critic)
        server.enqueue(Reply(status=500, content="down"))  # the first prompt fails for good
        first = CliRunner().invoke(cli, eval_args(server, medec, tmp_path, "--retries", "0"))
        assert first.exit_code == 1
        assert "1 of 3 prompts got no answer from fake-model" in first.output
        # one line (the fake server's own thread may print a reset connection beside it)
        assert first.output.strip().splitlines()[-1].startswith("Error: 1 of 3 prompts")
        before = len(server.chat_requests())
        second = CliRunner().invoke(cli, eval_args(server, medec, tmp_path))
        assert second.exit_code == 0, second.output
        assert len(server.chat_requests()) == before + 1  # only the unanswered prompt
        assert "1 prompts answered now (0 replayed from the log), 2 by earlier runs" in (
            second.output
        )
        third = CliRunner().invoke(cli, eval_args(server, medec, tmp_path, "--no-cache"))
        assert third.exit_code == 0 and len(server.chat_requests()) == before + 1
    assert "endpoint  fake-model  1.000" in second.output


def test_ollama_endpoint(medec: Path, tmp_path: Path) -> None:
    with serve() as server:
        server.set_responder(critic)
        args = eval_args(server, medec, tmp_path, "--backend", "ollama")
        args[args.index("--base-url") + 1] = server.url
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert all(r.path == "/api/chat" for r in server.chat_requests())
    assert "endpoint  fake-model  1.000" in result.output


def test_endpoint_errors(medec: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ["eval", "--task", "medec-detect", "--data", str(medec), "--db", str(tmp_path / "w.db")]
    no_model = CliRunner().invoke(cli, args)
    assert no_model.exit_code == 2 and "name a model" in no_model.output
    student_alone = CliRunner().invoke(cli, [*args, "--model", "bundled", "--student", "x"])
    assert (
        student_alone.exit_code == 2 and "--student goes with an endpoint" in student_alone.output
    )
    remote = CliRunner().invoke(
        cli, [*args, "--base-url", "https://api.example.com/v1", "--model", "m"]
    )
    assert remote.exit_code == 1 and len(remote.output.strip().splitlines()) == 1  # no server
    with serve() as server:
        unknown = CliRunner().invoke(
            cli, [*args, "--backend", "nope", "--base-url", server.url, "--model", "m"]
        )
        unpriced = CliRunner().invoke(
            cli, [*args, "--backend", "ollama", "--base-url", server.url, "--model", "m",
                  "--max-cost", "1"]
        )  # fmt: skip
    assert unknown.exit_code == 1 and "unknown backend 'nope'" in unknown.output
    assert unpriced.exit_code == 1 and "--max-cost needs a price for model 'm'" in unpriced.output
