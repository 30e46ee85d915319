"""The data-use guard against the tricks that would take a credentialed packet off the machine:
redirects, proxy variables, names that resolve elsewhere, IPv4-mapped and decimal addresses,
the Batch API upload; for both HTTP backends. "Elsewhere" is always a second local server that
must see no request, or an address no packet is ever sent to (the guard refuses first)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm.batch_api import BatchAPIError, BatchBackend
from medstore.llm.ollama_backend import OllamaBackend
from medstore.llm.openai_backend import OpenAIBackend
from medstore.pipeline.data_use import decide_data_use, resolve
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers_mimic import mimic_teacher
from .test_mimic_run import cache_dir, demo, run_args, subject  # noqa: F401 (fixtures)


@contextlib.contextmanager
def redirector(location: str) -> Iterator[str]:
    """A server on loopback that answers every request with a 307 to ``location``."""

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            self.send_response(307)
            self.send_header("Location", location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # a remote URL needs one to build a backend


def backend(kind: str, url: str):
    return OpenAIBackend("m", f"{url}/v1") if kind == "openai" else OllamaBackend("m", url)


def decide(url: str, allowed: tuple[str, ...] = ()):
    return decide_data_use(OpenAIBackend("m", url), allowed)


# Addresses: each decision names what the host resolved to ---------------------------------------
@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("http://127.0.0.1:8000/v1", ["127.0.0.1"]),
        ("http://127.7.7.7:8000/v1", ["127.7.7.7"]),
        ("http://2130706433:8000/v1", ["127.0.0.1"]),  # decimal spelling of 127.0.0.1
        ("http://0x7f000001:8000/v1", ["127.0.0.1"]),  # hex spelling
        ("http://[::1]:8000/v1", ["::1"]),
        ("http://[::ffff:127.0.0.1]:8000/v1", ["::ffff:127.0.0.1"]),  # IPv4-mapped loopback
    ],
)
def test_loopback_in_any_spelling_is_allowed_and_recorded(url: str, addresses: list[str]):
    decision = decide(url)
    assert decision.allowed and decision.rule == "loopback"
    assert decision.addresses == addresses


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://167772161/v1", "resolves to 10.0.0.1"),  # decimal spelling of 10.0.0.1
        ("http://[::ffff:10.1.2.3]/v1", "resolves to ::ffff:10.1.2.3"),  # mapped, not loopback
        ("http://no-such-host.invalid/v1", "does not resolve"),
    ],
)
def test_other_addresses_are_refused_before_any_packet(url: str, shown: str) -> None:
    decision = decide(url)
    assert not decision.allowed and decision.rule == "refused_remote_host"
    assert shown in decision.message


def test_a_localhost_name_is_only_as_local_as_its_addresses() -> None:
    for name in ("localhost", "evil.localhost", socket.gethostname()):
        found = resolve(name, 80)
        decision = decide(f"http://{name}:80/v1")
        local = bool(found) and all(
            a.startswith("127.") or a in ("::1", "::ffff:127.0.0.1") for a in found
        )
        assert decision.allowed == local, (name, found)
        assert decision.addresses == found


def test_a_named_remote_host_is_the_users_decision() -> None:
    decision = decide("http://gpu.example.org/v1", ("gpu.example.org",))
    assert decision.allowed and decision.rule == "allowed_remote_host"


def test_the_guard_pins_the_connection_to_the_checked_addresses() -> None:
    with serve() as server:
        teacher = OpenAIBackend("m", server.openai_base_url.replace("127.0.0.1", "localhost"))
        decision = decide_data_use(teacher, ())
        assert decision.allowed
        assert teacher._pins == {"localhost": decision.addresses}


# Redirects --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_a_redirect_is_never_followed(kind: str, demo, subject, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "w.db"
    with serve() as elsewhere, redirector(elsewhere.url) as local:
        args = run_args(
            demo, db, f"{local}/v1" if kind == "openai" else local, subject["subject_id"]
        )
        if kind == "ollama":
            args += ["--backend", "ollama"]
        result = CliRunner().invoke(cli, [*args, "--retries", "0"], env={"OPENAI_API_KEY": "t"})
        assert elsewhere.request_count == 0  # nothing reached the other server
    assert result.exit_code == 1, result.output
    assert "redirects to" in result.output and "never follows redirects" in result.output
    with Warehouse(db, readonly=True) as warehouse:
        decisions = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'data_use_decision'"
        )
    assert json.loads(decisions[0]["payload_json"])["addresses"] == ["127.0.0.1"]


def test_a_redirected_startup_check_is_refused() -> None:
    with serve() as elsewhere, redirector(elsewhere.url) as local:
        teacher = OpenAIBackend("m", f"{local}/v1")
        with pytest.raises(Exception, match=r"redirects to .* never follows redirects"):
            asyncio.run(teacher.preflight())
        asyncio.run(teacher.aclose())
        assert elsewhere.request_count == 0


def test_a_redirected_batch_upload_goes_nowhere() -> None:
    with serve() as elsewhere, redirector(elsewhere.url) as local:
        batch = BatchBackend(OpenAIBackend("m", f"{local}/v1"), poll_interval_s=0.01)

        async def upload() -> None:
            try:
                await batch._upload('{"custom_id": "x"}\n')
            finally:
                await batch.aclose()

        with pytest.raises(BatchAPIError, match="redirects to"):
            asyncio.run(upload())
        assert elsewhere.request_count == 0


# Proxy variables --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_proxy_variables_are_ignored(kind: str, demo, subject, tmp_path: Path) -> None:  # noqa: F811
    db = tmp_path / "w.db"
    with serve() as proxy, serve() as teacher:
        teacher.set_responder(mimic_teacher)
        env = {
            "OPENAI_API_KEY": "t",
            "NO_PROXY": "",
            "no_proxy": "",
            **{name: proxy.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
            **{name.lower(): proxy.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        }
        url = teacher.openai_base_url if kind == "openai" else teacher.url
        args = run_args(demo, db, url, subject["subject_id"], "--limit", "1")
        if kind == "ollama":
            args += ["--backend", "ollama"]
        result = CliRunner().invoke(cli, args, env=env)
        assert proxy.request_count == 0
        assert teacher.request_count > 0
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_a_redirected_call_is_an_error_naming_the_location(kind: str) -> None:
    from medstore.llm import GenerationParams
    from medstore.llm.base import PermanentError

    with serve() as elsewhere, redirector(elsewhere.url) as local:
        teacher = backend(kind, local)

        async def call() -> None:
            try:
                await teacher.complete([{"role": "user", "content": "packet"}], GenerationParams())
            finally:
                await teacher.aclose()

        with pytest.raises(PermanentError, match=f"redirects to {elsewhere.url}") as raised:
            asyncio.run(call())
        assert raised.value.kind == "redirect"
        assert elsewhere.request_count == 0
