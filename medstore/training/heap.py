"""Keep glibc's heap from growing with every training step on a CPU.

glibc's malloc serves an allocation from the heap unless it is larger than its mmap threshold, and
raises that threshold (up to 32 MB) each time a large block mapped on its own is freed. A CPU
training step frees and re-allocates activations of many megabytes, so after the first steps they
all come from the heap, which fragments and is rarely given back: the process's resident memory
grows to several times what the tensors need, and page faults slow every step. Fixing the
threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the raising off) maps each large block
on its own and returns it on free. Measured on the bundled model (LoRA, gradient checkpointing,
2 x 1,024 tokens): the forward pass's peak grew by 1.6 GB without it and 0.57 GB with it, and ran
3-5x faster. Elsewhere (macOS, musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD_BYTES = 64 * 1024


def fix_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold for this process; True when it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
