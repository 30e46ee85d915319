"""The training process's heap settings (medstore/training/heap.py): glibc's mmap threshold is
fixed, and PyTorch is asked for transparent huge pages before it allocates anything."""

import subprocess
import sys
from pathlib import Path

import pytest

from medstore.training import heap

REPO = Path(__file__).resolve().parent.parent
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
needs_thp = pytest.mark.skipif(
    not THP_MODE.exists() or "[never]" in THP_MODE.read_text(),
    reason="this kernel gives no transparent huge pages",
)
# With the kernel's mode at [always] every large block gets huge pages, asked for or not.
needs_thp_on_request = pytest.mark.skipif(
    not THP_MODE.exists() or "[madvise]" not in THP_MODE.read_text(),
    reason="huge pages here are not given on request only",
)

# Prints how many KiB of huge pages a fresh 64 MB tensor brought into this process.
MEASURE = """
import re, torch
def huge():
    text = open("/proc/self/smaps_rollup").read()
    return int(re.search(r"AnonHugePages:\\s+(\\d+)", text).group(1))
before = huge()
block = torch.ones(64 * 2**20 // 4)
print(huge() - before)
"""


def huge_kib(prelude: str) -> int:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", prelude + MEASURE],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def test_the_threshold_is_set_on_linux() -> None:
    assert heap.fix_mmap_threshold() is sys.platform.startswith("linux")


def test_elsewhere_it_does_nothing(monkeypatch) -> None:
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    monkeypatch.delenv(heap.HUGE_PAGES_VARIABLE, raising=False)
    assert heap.prepare_cpu_heap() is False
    assert heap.HUGE_PAGES_VARIABLE not in heap.os.environ


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_huge_pages_are_asked_for_and_a_users_choice_is_kept(monkeypatch) -> None:
    monkeypatch.delenv(heap.HUGE_PAGES_VARIABLE, raising=False)
    assert heap.prepare_cpu_heap() is True
    assert heap.os.environ[heap.HUGE_PAGES_VARIABLE] == "1"
    monkeypatch.setenv(heap.HUGE_PAGES_VARIABLE, "0")
    heap.prepare_cpu_heap()
    assert heap.os.environ[heap.HUGE_PAGES_VARIABLE] == "0"


@needs_thp
def test_tensors_get_huge_pages_when_prepared_before_trl_is_imported() -> None:
    prepared = "from medstore.training.heap import prepare_cpu_heap\nprepare_cpu_heap()\n"
    assert huge_kib(prepared) >= 32 * 1024


@needs_thp_on_request
def test_without_the_request_or_after_trls_imports_they_do_not() -> None:
    prepared = "from medstore.training.heap import prepare_cpu_heap\nprepare_cpu_heap()\n"
    assert huge_kib("") == 0  # torch's own default
    late = "import medstore.training.trainer\n" + prepared  # TRL's imports allocate: too late
    assert huge_kib(late) == 0


@needs_thp
def test_the_train_command_prepares_the_heap_before_torch(tmp_path) -> None:
    """``cli.py train`` with data that is refused: by then torch is imported, and its blocks are
    already on huge pages."""
    prelude = (
        "from click.testing import CliRunner\n"
        "from medstore.cli.train import train\n"
        f"result = CliRunner().invoke(train, ['--data', {str(tmp_path / 'none')!r}, "
        f"'--out', {str(tmp_path / 'out')!r}, '--db', {str(tmp_path / 'w.db')!r}])\n"
        "assert result.exit_code == 1, result.output\n"
        "import sys; assert 'torch' in sys.modules\n"
    )
    assert huge_kib(prelude) >= 32 * 1024
