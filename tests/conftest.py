"""Shared fixtures: a fresh warehouse file per test, the fake teacher server, offline hubs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.db"


@pytest.fixture
def warehouse(db_path: Path) -> Iterator:
    from medstore.warehouse.store import Warehouse

    with Warehouse(db_path) as opened:
        yield opened
