"""The fake teacher in a process of its own, so that its CPU time is not the runner's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SERVER = """
import sys
sys.path.insert(0, {repo!r})
from tests.fakeserver import serve
from tests.{module} import {function} as responder
with serve(latency_s={latency}) as server:
    server.set_responder(responder)
    print(server.openai_base_url, flush=True)
    sys.stdin.read()
"""


@contextmanager
def teacher_process(responder: str, latency_s: float) -> Iterator[str]:
    """Start tests/fakeserver.py answering with ``responder`` ("teachers:consult_teacher", a
    function in tests/) after ``latency_s`` per request; yields its OpenAI-compatible base URL."""
    module, function = responder.split(":")
    code = SERVER.format(repo=str(REPO), module=module, function=function, latency=latency_s)
    server = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield server.stdout.readline().strip()
    finally:
        server.stdin.close()
        server.wait()
