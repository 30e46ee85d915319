"""How the synthetic demo writes rows: ids drawn from one seeded generator, timestamps as MIMIC
spells them, and gzip CSV files whose bytes depend only on their rows."""

from __future__ import annotations

import gzip
import os
import random
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any


class Empty:
    """A zero-length string written as ``""`` (the real files have them where NULL is expected)."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = Empty()


def ts(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def day_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day)


class RowWriter:
    """The demo's tables as lists of rows, and the ids and providers the rows carry.

    Every random draw comes from ``rng``, in a fixed order: the same seed writes the same bytes.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.used_ids: set[int] = set()

    def unique_id(self, low: int, high: int) -> int:
        while True:
            value = self.rng.randint(low, high)
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def provider(self) -> str:
        return "P" + "".join(self.rng.choices("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", k=5))

    def add(self, table: str, **row: Any) -> None:
        self.rows[table].append(row)


def csv_field(value: Any) -> str:
    if value is None:
        return ""
    if value is EMPTY:
        return '""'
    text = str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_table(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """A gzip CSV whose bytes depend only on the rows (no timestamp or name in its header)."""
    lines = [",".join(columns)]
    lines += [",".join(csv_field(row.get(name)) for name in columns) for row in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as packed:
        packed.write(data)
    os.replace(partial, path)
