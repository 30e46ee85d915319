"""Canonical JSON, tagged content hashes and time-ordered ids: the encodings the log relies on."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

HASH_TAG = "b2:"


_FALLBACK = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, UTF-8 kept as is.

    orjson writes it five times faster than the standard library, and the log encodes every
    event's payload this way. The rare value orjson refuses (an integer beyond 64 bits) is
    written by the standard library instead: the same value always takes the same path.
    """
    return canonical_json_bytes(value).decode()


def canonical_json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _FALLBACK.encode(value).encode()


def content_hash(text: str | bytes) -> str:
    """A tagged BLAKE2b-256 hash, e.g. ``b2:3f…``; the tag lets the algorithm change later."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return HASH_TAG + hashlib.blake2b(data, digest_size=32).hexdigest()


def json_hash(value: Any) -> str:
    return content_hash(canonical_json_bytes(value))


def short_hash(text: str, length: int = 16) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()[:length]


# Seeded once from the OS: ids need uniqueness, not secrecy, and os.urandom per id is a syscall.
_ID_RANDOM = random.Random(os.urandom(32))


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds then randomness, so ids sort by time."""
    unix_ms = time.time_ns() // 1_000_000
    rand = _ID_RANDOM.getrandbits(80)
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    text = f"{value:032x}"  # what str(uuid.UUID(int=value)) spells, without building the object
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# The last whole second utc_now spelled, and its spelling: one tuple, read and replaced whole,
# so a thread never pairs one second's spelling with another's microseconds.
_SECOND: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """UTC timestamp with microseconds, ISO 8601 with a ``Z`` (``2026-01-31T12:00:00.123456Z``).

    Every event has one: the date and time are spelled once per second, and only the
    microseconds each call (a third of the cost of datetime.isoformat)."""
    global _SECOND
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    spelled = _SECOND
    if spelled[0] != second:
        spelled = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{spelled[1]}.{micro:06d}Z"


def utc_after(seconds: float) -> str:
    """``utc_now()`` plus ``seconds``, in the same sortable spelling."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"
