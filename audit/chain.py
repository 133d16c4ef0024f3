"""The audit chain's arithmetic: the key kept outside the database, the canonical form of an
event, and the keyed hashes that link each event to the one before.

hash(event) = HMAC-SHA256(key, previous hash + "\n" + canonical(event)). Without the key (a file
in the node's data directory, never in the database) no one can compute a valid hash, so someone
who can edit the database cannot change, remove or reorder events and repair the chain, even by
recomputing plain SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from django.conf import settings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def audit_key() -> bytes:
    """This node's audit key, from KVS_AUDIT_KEY_FILE (created, mode 0600, on first use)."""
    path = Path(settings.KVS_AUDIT_KEY_FILE)
    cached = _keys.get(str(path))
    if cached is not None:
        return cached
    with _keys_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        key = path.read_text().strip().encode()
        if len(key) < 32:
            raise RuntimeError(f"The audit key in {path} is too short (or empty).")
        _keys[str(path)] = key
        return key


def ms_of(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact)."""
    return (moment - EPOCH) // _ONE_MS


def moment_of(ms: int) -> datetime:
    """The aware datetime of `ms` milliseconds since the epoch (exact, unlike fromtimestamp)."""
    return EPOCH + timedelta(milliseconds=ms)


def detail_normal(detail: dict) -> dict:
    """`detail` as the database gives it back (JSON types only), so stored = hashed."""
    return orjson.loads(orjson.dumps(detail, option=orjson.OPT_NON_STR_KEYS))


def canonical(event) -> bytes:
    """The bytes an event's hash covers: every field but the hash, in a fixed order."""
    fields = [
        event.seq,
        ms_of(event.at),
        event.actor,
        event.action,
        event.target,
        event.node,
        event.remote,
        event.credential,
        event.detail,
    ]
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def event_hash(event, *, previous: str, key: bytes | None = None) -> str:
    """The keyed hash of `event`, chained to the `previous` event's hash."""
    message = previous.encode() + b"\n" + canonical(event)
    return hmac.new(key or audit_key(), message, hashlib.sha256).hexdigest()


def anchor_mac(*, seq: int, hash_: str, key: bytes | None = None) -> str:
    """The keyed MAC of an anchor (the last pruned event's seq and hash)."""
    message = f"anchor\n{seq}\n{hash_}".encode()
    return hmac.new(key or audit_key(), message, hashlib.sha256).hexdigest()


def hashes_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
