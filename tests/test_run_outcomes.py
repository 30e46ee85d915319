"""What a run reports about itself: exit codes and failure summaries, and latency recorded as
time on the wire with the wait for a rate-limit slot apart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm.openai_backend import OpenAIBackend
from medstore.pipeline.options import RunOptions
from medstore.pipeline.runner import Runner
from medstore.recipes.consult import ConsultRecipe
from medstore.warehouse.store import Warehouse

from .fakeserver import Reply, serve
from .teachers import consult_teacher, first_user_message, write_scenarios


def run(server, db: Path, source: Path, *extra: str):
    args = [
        "run",
        "--source",
        str(source),
        "--base-url",
        server.openai_base_url,
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


def test_every_task_failed_exits_non_zero_with_the_top_reason(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "s.json", 3)
    with serve() as server:
        server.set_responder(lambda request: Reply(content="model is loading", status=503))
        result = run(server, tmp_path / "w.db", source, "--retries", "1")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "0 accepted, 0 rejected, 3 failed" in lines[0]  # the counts are still printed
    assert lines[-1] == (
        "Error: every task failed: 3 failed (3 server_error); server_error: profile: "
        "HTTP 503: model is loading"
    )


def test_some_failures_exit_zero_and_say_how_many_and_why(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "s.json", 3)

    def one_case_times_out(request: dict[str, Any]) -> str | Reply:
        if '"id": "case-01"' in first_user_message(request):
            return Reply(content="upstream timed out", status=504)
        return consult_teacher(request)

    with serve() as server:
        server.set_responder(one_case_times_out)
        result = run(server, tmp_path / "w.db", source, "--retries", "0")
    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 rejected, 1 failed" in result.output
    assert (
        "1 failed (1 server_error); server_error: profile: HTTP 504: upstream timed out; "
        "the next run redoes failed tasks"
    ) in result.output


def test_rejections_alone_are_not_a_failed_run(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "s.json", 2)
    with serve() as server:
        server.set_responder(lambda request: '{"id": "p-1"}')  # never a valid profile
        result = run(server, tmp_path / "w.db", source)
    assert result.exit_code == 0, result.output
    assert "0 accepted, 2 rejected, 0 failed" in result.output


def test_latency_is_time_on_the_wire_and_queue_wait_is_apart(tmp_path: Path) -> None:
    """One request a window (--rpm 1): later calls wait ~0.6 s for a slot, but each spends only
    the server's 0.1 s on the wire, and that is what latency_ms says."""
    source = write_scenarios(tmp_path / "s.json", 1)
    with serve(latency_s=0.1) as server:
        server.set_responder(
            lambda request: Reply(
                content=consult_teacher(request), headers={"openai-processing-ms": "97"}
            )
        )
        backend = OpenAIBackend("m", server.openai_base_url)
        options = RunOptions(rpm=1, rate_window_s=0.6, progress=False)
        with Warehouse(tmp_path / "w.db") as warehouse:
            started = time.perf_counter()
            result = asyncio.run(
                Runner(warehouse, ConsultRecipe(), backend, options).run(str(source))
            )
            wall_ms = (time.perf_counter() - started) * 1000
            calls = warehouse.query(
                "SELECT stage, latency_ms, queue_ms, server_ms FROM llm_calls ORDER BY id"
            )
    assert result.counts["accepted"] == 1
    assert [c["stage"] for c in calls] == ["profile", "dialogue", "reasoning", "expert"]
    assert all(100 <= c["latency_ms"] < 450 for c in calls), calls
    assert all(c["server_ms"] == 97 for c in calls)
    assert calls[0]["queue_ms"] < 100
    assert all(c["queue_ms"] >= 450 for c in calls[1:]), calls
    assert sum(c["latency_ms"] for c in calls) < wall_ms / 2
