"""Sharded workers: `run --shard i/N` takes the tasks whose key hashes to shard i.

The hash is of the task key alone, so every machine computes the same partition from the same
source without talking to the others: each key lands in exactly one shard.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


class ExecutorError(Exception):
    """A sharded run (``--executor ray``) that cannot start or go on: one-line reason."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` → Shard(2, 8); shards are numbered from 0."""
        try:
            index_text, count_text = text.split("/")
            index, count = int(index_text), int(count_text)
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"--shard {text!r}: need 0 <= i < N and N >= 1")
        return cls(index, count)

    def owns(self, task_key: str) -> bool:
        return shard_of(task_key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(task_key: str, count: int) -> int:
    """The shard a task key belongs to: a stable hash (not Python's salted ``hash``) modulo N."""
    digest = hashlib.blake2b(task_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count
