"""Fit TRL's fused LM head to a CPU.

SFTTrainer computes the loss through TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``),
which projects the hidden states onto the vocabulary in tiles instead of building the full
logits. Its sizes are chosen for a GPU, where a Triton kernel folds each tile in place. On a CPU
the tile is folded with plain torch ops, each of which makes a temporary as large as the tile, and
two of TRL's choices cost a CPU dearly:

- the tile is 4,096 tokens x 32,768 vocabulary entries of float32, 512 MB, and the fold and its
  backward hold several temporaries of that size at once;
- every position of the batch is projected, prompt tokens included, although only the answer's
  tokens have a label (on a GPU TRL projects those alone; it projects all of them elsewhere so
  that compilers for other accelerators see one tile shape per batch).

Measured on 2 x 4,096 positions (2,500 of them labelled) against the bundled model's 49,152-token
vocabulary, forward and backward: TRL's defaults peaked 4.26 GB above the start and took 49 s;
1,024 x 8,192 tiles over the labelled positions only, 0.29 GB and 12.8 s, with the same loss and
the same gradients. ``fit_fused_lm_head_to_cpu`` sets those two things for this process; it
changes nothing for a GPU, and nothing if TRL no longer has these settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CPU_TOKEN_TILE = 1024
CPU_VOCAB_TILE = 8192


def fit_fused_lm_head_to_cpu() -> bool:
    """Smaller tiles, and labelled positions only, for TRL's fused LM head on a CPU; True when
    this TRL has the settings (they are then set for the whole process)."""
    try:
        from trl.kernels import chunked_logprob
        from trl.trainer import utils
    except ImportError:
        return False
    known = (
        hasattr(chunked_logprob, "TOKEN_CHUNK_SIZE")
        and hasattr(utils, "_CHUNKED_LOGPROB_CHUNK_SIZE")
        and hasattr(utils, "_use_triton")
    )
    if not known:
        return False
    chunked_logprob.TOKEN_CHUNK_SIZE = min(chunked_logprob.TOKEN_CHUNK_SIZE, CPU_TOKEN_TILE)
    utils._CHUNKED_LOGPROB_CHUNK_SIZE = min(utils._CHUNKED_LOGPROB_CHUNK_SIZE, CPU_VOCAB_TILE)
    if not getattr(utils._use_triton, "compact_on_cpu", False):
        # In ``add_fused_lm_head`` this answer decides one thing only: whether the labelled
        # positions alone are projected. The kernel module keeps its own, unchanged.
        utils._use_triton = compact_on_cpu(utils._use_triton)
    return True


def compact_on_cpu(use_triton: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """TRL's answer, except that a CPU projects the labelled positions only."""

    def answer(device: Any) -> bool:
        return getattr(device, "type", device) == "cpu" or use_triton(device)

    answer.compact_on_cpu = True  # type: ignore[attr-defined]
    return answer
