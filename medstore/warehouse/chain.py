"""The hash chain over the events, and the optional signature of its head.

Each event's ``hash`` covers the previous link, its own fields and its payload, so editing or
removing a row breaks every link after it; ``chain_head`` records the last link so that a row
removed from the end shows too. Anyone who can write the file can still rewrite history and
re-hash it. Two defences: ``verify --anchor`` prints the head to keep elsewhere (and
``verify --expect-head`` checks a kept one is still in the chain), and with
``$MEDSTORE_CHAIN_KEY`` set, every append signs the head with an HMAC that a forger without the
key cannot recompute.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from medstore.warehouse.hashing import HASH_TAG, canonical_json

KEY_ENV = "MEDSTORE_CHAIN_KEY"
SIGNATURE_TAG = "hmac-sha256:"
GENESIS = "genesis"


def link_hash(prev_hash: str, row: tuple[Any, ...]) -> str:
    """One link of the chain: the previous link, this row's fields, then its payload JSON.

    The payload (already canonical text) is hashed as is rather than re-encoded inside the list.
    """
    *fields, payload_json, created_utc = row
    header = canonical_json([*fields, created_utc])
    data = f"{prev_hash}\n{header}\n{payload_json}".encode()
    return HASH_TAG + hashlib.blake2b(data, digest_size=32).hexdigest()


def chain_key() -> bytes | None:
    value = os.environ.get(KEY_ENV)
    return value.encode() if value else None


def sign_head(key: bytes, last_id: int, last_hash: str, event_count: int) -> str:
    message = f"{last_id}\n{last_hash}\n{event_count}".encode()
    return SIGNATURE_TAG + hmac.new(key, message, hashlib.sha256).hexdigest()


class ChainKeyMissing(Exception):
    """The head is signed but this process has no key: appending would break the signature."""


def head_signature(
    previous_signature: str | None, last_id: int, last_hash: str, event_count: int
) -> str | None:
    """The signature a new head gets: signed when a key is set; unsigned only if it never was."""
    key = chain_key()
    if key is not None:
        return sign_head(key, last_id, last_hash, event_count)
    if previous_signature is not None:
        raise ChainKeyMissing(
            f"this warehouse's chain is signed: set ${KEY_ENV} to the key it was signed with"
        )
    return None
