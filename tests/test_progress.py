"""The run's progress bar, read from a real terminal (a pty with a window size): it moves on
every stage call, not only when a task ends, and shows calls and tokens per second."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from .conftest import REPO
from .fakeserver import serve
from .teachers import consult_teacher, write_scenarios


def run_in_terminal(args: list[str]) -> str:
    """A command's output as a 160-column terminal shows it (carriage returns as new lines)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), *args],
        cwd=REPO,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command exited and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0, output.decode(errors="replace")
    return output.decode(errors="replace").replace("\r", "\n")


def test_the_bar_moves_on_each_stage_call(tmp_path: Path) -> None:
    scenarios = write_scenarios(tmp_path / "scenarios.json", 2)
    with serve(latency_s=0.15) as teacher:
        teacher.set_responder(consult_teacher)
        output = run_in_terminal(
            ["run", "--recipe", "consult", "--source", str(scenarios), "--concurrency", "1",
             "--base-url", teacher.openai_base_url, "--db", str(tmp_path / "w.db")]
        )  # fmt: skip
    done = [float(n) for n in re.findall(r"\| (\d+\.\d)/2 tasks", output)]
    # Four stages per consult task: the bar passes through quarters of the first task.
    assert {0.2, 0.5, 0.8} <= set(done), output
    assert done == sorted(done) and done[-1] == 2.0
    assert re.search(r"ok=2, rejected=0, failed=0, calls=8, tok/s=[\d,]+, cost=\$", output)
    assert "completed: 2 accepted" in output


def test_no_bar_when_asked_for_none(tmp_path: Path) -> None:
    scenarios = write_scenarios(tmp_path / "scenarios.json", 1)
    with serve() as teacher:
        teacher.set_responder(consult_teacher)
        output = run_in_terminal(
            ["run", "--recipe", "consult", "--source", str(scenarios), "--no-progress",
             "--base-url", teacher.openai_base_url, "--db", str(tmp_path / "w.db")]
        )  # fmt: skip
    assert "tasks [" not in output and "completed: 1 accepted" in output
