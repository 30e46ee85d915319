"""Replies and sources that are hostile or broken: bytes that are not UTF-8, bodies of another
shape, replies and source fields too large, and a server that echoes the API key back. Each is
a named outcome (a retried bad_response, a skip, a failure with its reason), never a crash, and
the key never reaches the file."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from .fakeserver import Reply, serve
from .teachers import consult_teacher, write_scenarios


@contextlib.contextmanager
def raw_server(body: bytes, status: int = 200) -> Iterator[tuple[str, list[str]]]:
    """Answers every POST with these exact bytes (and GET /models with an empty list)."""
    seen: list[str] = []

    class Raw(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, code: int, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.reply(200, b'{"data": [], "models": []}')

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(self.path)
            self.reply(status, body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Raw)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(db: Path, source: Path, url: str, *extra: str):
    args = ["run", "--recipe", "consult", "--source", str(source), "--base-url", url,
            "--model", "m", "--db", str(db), "--retry-base-delay", "0", "--no-progress",
            "--limit", "1", *extra]  # fmt: skip
    return CliRunner().invoke(cli, args, env={"OPENAI_API_KEY": "sk-test-0123456789abcdef"})


def llm_errors(db: Path) -> list[dict]:
    with Warehouse(db, readonly=True) as warehouse:
        return [
            json.loads(row["payload_json"])
            for row in warehouse.query(
                "SELECT payload_json FROM events WHERE event_type = 'llm_error' ORDER BY id"
            )
        ]


def failure_reasons(db: Path) -> list[str]:
    with Warehouse(db, readonly=True) as warehouse:
        return [row["reason"] for row in warehouse.query("SELECT reason FROM task_state")]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_scenarios(tmp_path / "scenarios.json", 2)


@pytest.mark.parametrize(
    ("backend", "body"),
    [
        ("openai", b'{"choices": [{"message": {"content": "caf\xe9 \xff\xfe"}}]}'),  # Latin-1
        ("openai", b'{"model": "m", "results": ["not", "chat"]}'),  # JSON, not a completion
        ("openai", b'{"choices": [{"message": {"content": {"nested": 1}}}]}'),  # not text
        ("ollama", b'{"model": "m", "choices": []}'),  # an OpenAI body on the native API
        ("ollama", b"\x80\x81 not even ascii"),
    ],
)
def test_a_broken_body_is_a_retried_bad_response(
    backend: str, body: bytes, tmp_path: Path, source: Path
) -> None:
    db = tmp_path / "w.db"
    with raw_server(body) as (url, seen):
        target = f"{url}/v1" if backend == "openai" else url
        result = run(db, source, target, "--backend", backend, "--retries", "2")
    assert result.exit_code == 1 and "every task failed" in result.output, result.output
    assert len(seen) == 3  # the first try and two retries
    errors = llm_errors(db)
    assert [e["kind"] for e in errors] == ["bad_response"] * 3
    assert [e["will_retry"] for e in errors] == [True, True, False]
    assert failure_reasons(db) == ["bad_response"]


def test_a_reply_over_the_limit_is_refused_not_stored(tmp_path: Path, source: Path) -> None:
    db = tmp_path / "w.db"
    huge = "x" * 3_000_000
    with serve() as teacher:
        teacher.set_responder(lambda request: huge)
        result = run(db, source, teacher.openai_base_url, "--max-reply-bytes", "1000000")
        assert len(teacher.chat_requests()) == 1  # refused once, not retried or repaired
    assert result.exit_code == 1
    assert failure_reasons(db) == ["reply_too_large"]
    assert "is over 1,000,000 bytes (--max-reply-bytes)" in llm_errors(db)[0]["message"]
    assert huge not in db.read_bytes().decode("latin-1")


def test_a_source_record_over_the_limit_is_skipped_with_the_reason(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 3)
    scenarios = json.loads(source.read_text())
    scenarios[0]["background"] = "y" * 2_000_000
    source.write_text(json.dumps(scenarios))
    db = tmp_path / "w.db"
    with serve() as teacher:
        teacher.set_responder(consult_teacher)
        result = run(db, source, teacher.openai_base_url, "--limit", "3")
        prompts = [json.dumps(r.json) for r in teacher.chat_requests()]
    assert result.exit_code == 0, result.output
    assert "2 accepted" in result.output
    assert not any("y" * 1000 in prompt for prompt in prompts)
    status = CliRunner().invoke(cli, ["status", "--db", str(db)]).output
    assert "source record too large" in status


def test_the_api_key_never_reaches_the_file(tmp_path: Path, source: Path) -> None:
    key = "sk-test-0123456789abcdef"
    db = tmp_path / "w.db"
    with serve() as teacher:
        # A 401 whose body quotes the key, then answers that quote it too.
        teacher.enqueue(Reply(f"Incorrect API key provided: {key}", status=401))
        teacher.set_responder(lambda request: f"key {key} " + consult_teacher(request))
        run(db, source, teacher.openai_base_url, "--retries", "0")
        run(db, source, teacher.openai_base_url, "--retries", "0")
    data = db.read_bytes()
    for suffix in ("", "-wal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            data += path.read_bytes()
    assert key.encode() not in data
    assert b"[redacted]" in data
