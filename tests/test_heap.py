"""The training process's glibc mmap threshold is fixed (medstore/training/heap.py)."""

import sys

from medstore.training import heap


def test_the_threshold_is_set_on_linux() -> None:
    assert heap.fix_mmap_threshold() is sys.platform.startswith("linux")


def test_elsewhere_it_does_nothing(monkeypatch) -> None:
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.fix_mmap_threshold() is False
