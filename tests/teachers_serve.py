"""A real warehouse for the frontend tests: the consult recipe run against the fake teacher
server, scripted so that the log holds a repair, a rejection, a retried server error and
several labels."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from medstore.cli import cli

from .conftest import REPO
from .fakeserver import Reply, serve
from .teachers import (
    EXPERT,
    consult_stage,
    consult_teacher,
    first_user_message,
    write_scenarios,
)

QUEUE_SAMPLES = 55  # enough to review 50 with the keyboard and have some left

SERVE_SPECIALTIES = ("cardiology", "neurology", "paediatrics")

RISK_BY_CASE = ["high", "moderate", "high", "low", "high", "moderate"]
UNPARSEABLE_FIRST = 1  # case-01: the first expert answer is not JSON, the repair fixes it
ALWAYS_BAD_CODE = 2  # case-02: an invented ICD-10 code every time: rejected after the repairs
SERVER_ERROR_ONCE = 3  # case-03: the dialogue stage gets one HTTP 500, then succeeds
RARE_WORD = "xanthelasma"  # only in case-04's reasoning: what the search test looks for


def case_number(request: dict[str, Any]) -> int:
    """Scenario i has age 30 + i; the profile with that age is quoted in every later prompt."""
    text = first_user_message(request)
    match = re.search(r'"age": ?(\d+)', text) or re.search(r"age \((\d+)\)", text)
    return int(match.group(1)) - 30


class ScriptedTeacher:
    """Answers consult validly except for the scripted cases above."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failed_once: set[int] = set()

    def __call__(self, request: dict[str, Any]) -> str | Reply:
        stage = consult_stage(request)
        case = case_number(request)
        first_try = len(request["messages"]) == 2
        if stage == "dialogue" and case == SERVER_ERROR_ONCE:
            with self.lock:
                if case not in self.failed_once:
                    self.failed_once.add(case)
                    return Reply(status=500)
        if stage == "reasoning" and case == 4:
            return consult_teacher(request) + f" Note the {RARE_WORD} around both eyes."
        if stage != "expert":
            return consult_teacher(request)
        if case == UNPARSEABLE_FIRST and first_try:
            return '{"differential_diagnosis": [ not json'
        expert = json.loads(json.dumps(EXPERT))
        expert["risk_assessment"]["level"] = RISK_BY_CASE[case]
        if case == ALWAYS_BAD_CODE:
            expert["differential_diagnosis"][0]["icd10_code"] = "Z99.999"
        return json.dumps(expert)


def build_warehouse(folder: Path) -> Path:
    """Run consult over six scenarios into folder/warehouse.db; returns its path."""
    db = folder / "warehouse.db"
    scenarios = write_scenarios(folder / "scenarios.json", 6, SERVE_SPECIALTIES)
    with serve() as server:
        server.set_responder(ScriptedTeacher())
        result = CliRunner().invoke(
            cli,
            [
                "run",
                "--recipe",
                "consult",
                "--source",
                str(scenarios),
                "--base-url",
                server.openai_base_url,
                "--model",
                "fake-model",
                "--db",
                str(db),
                "--retry-base-delay",
                "0",
                "--concurrency",
                "3",
                "--no-progress",
            ],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    assert "5 accepted, 1 rejected" in result.output, result.output
    return db


def build_queue_warehouse(folder: Path, n: int = QUEUE_SAMPLES) -> Path:
    """Consult over n scenarios, every stage answered validly: n distinct samples to review."""
    db = folder / "queue.db"
    scenarios = write_scenarios(folder / "queue-scenarios.json", n)
    with serve() as server:
        server.set_responder(consult_teacher)
        result = CliRunner().invoke(
            cli,
            ["run", "--recipe", "consult", "--source", str(scenarios), "--base-url",
             server.openai_base_url, "--db", str(db), "--concurrency", "4", "--no-progress"],
            catch_exceptions=False,
        )  # fmt: skip
    assert f"{n} accepted" in result.output, result.output
    return db


def copy_warehouse(source: Path, target: Path) -> Path:
    """A consistent copy (WAL included) through SQLite's backup API."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A web server in a subprocess on a free port (put where the command says "{port}"),
    stopped on exit."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [str(self.port) if arg == "{port}" else arg for arg in command]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.reader = threading.Thread(target=self.read_output, daemon=True)
        self.reader.start()

    def read_output(self) -> None:
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))

    def __enter__(self) -> ServerProcess:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.reader.join(5)
                raise RuntimeError("server exited: " + "\n".join(self.output))
            try:
                httpx.get(self.base_url + "/-/versions.json", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return self
        raise RuntimeError("server did not answer within 30 s")

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(5)


class ServeProcess(ServerProcess):
    """`python cli.py serve` on a warehouse."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, str(REPO / "cli.py"), "serve", "--db", str(db)]
        command += ["--port", "{port}", "--refresh-interval", "0.2", *args]
        super().__init__(command, env)


class DatasetteProcess(ServerProcess):
    """Plain `datasette serve FILE...`, not medstore's command: the plugin comes in through its
    entry point (run from the repository root, so that it is this checkout's medstore)."""

    def __init__(self, *args: Path | str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "datasette", "serve", *map(str, args)]
        command += ["--host", "127.0.0.1", "--port", "{port}"]
        super().__init__(command, env)
