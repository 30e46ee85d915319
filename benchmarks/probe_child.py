"""One benchmark child in a process of its own: run_probe.py (a medstore run) or
plain_client.py (the plain script), each printing its figures as JSON on its last line.

Shared by bench_core.py and bench_scale.py, so both read the children the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` (in benchmarks/) with ``args``; its figures, plus ``cpu_ms_per_request``.
    A child that fails stops the benchmark with the end of its stderr."""
    done = subprocess.run(
        [sys.executable, script, *args], cwd=HERE, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.splitlines()[-1])
    figures["cpu_ms_per_request"] = figures["cpu_s"] / figures["requests"] * 1000
    return figures
