"""HMAC-SHA256 signatures on node-to-node requests and their answers, with a replay window.

A request signs its method, path with query, timestamp, a random nonce, the sending node's id, the
id of the node it is meant for and the SHA-256 of its body. The receiver refuses a request meant
for another node, whose timestamp is outside the window, or whose signature it has already seen in
the window (remembered in the node's cache, i.e. its Redis). The target `*` (ANY_NODE) is for a
node that does not know its peer's id yet (a seed, when joining); only endpoints that say so accept
it. An answer signs the request's signature, the answering node's id, the status and the body
hash, so a client accepts only the answer to its own request, from a holder of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.core.cache import cache

HEADER_NODE = "X-KVS-Node"
HEADER_TARGET = "X-KVS-Target"  # the node id the request is meant for, or ANY_NODE
HEADER_TIMESTAMP = "X-KVS-Timestamp"  # ms since the epoch, decimal
HEADER_NONCE = "X-KVS-Nonce"
HEADER_SIGNATURE = "X-KVS-Signature"  # lowercase hex HMAC-SHA256
SCHEME = "KVS-HMAC-SHA256"
MAX_FIELD = 128
REPLAY_KEY = "kvs:cluster:seen:{}"
ANY_NODE = "*"


class BadSignature(Exception):
    """A request or answer that is unsigned, mis-signed, stale or replayed (the reason says)."""


@dataclass(frozen=True)
class SignedRequest:
    """A verified node-to-node request: who sent it and its signature."""

    node_id: str
    target: str  # this node's id, or ANY_NODE where the endpoint accepts it
    timestamp: int
    signature: str


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _same(expected: str, given: str) -> bool:
    """Constant-time equality of a computed and a received signature."""
    return hmac.compare_digest(expected.encode(), given.encode(errors="replace"))


def _mac(secret: str, *parts: str) -> str:
    """The hex HMAC-SHA256 of `parts` joined by newlines (no part may hold a newline)."""
    message = "\n".join(parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_signature(
    secret: str,
    *,
    method: str,
    path: str,
    timestamp: int,
    nonce: str,
    node_id: str,
    target: str,
    body: bytes,
) -> str:
    """The signature of one request."""
    fields = ("KVS2-REQUEST", method.upper(), path, str(timestamp), nonce, node_id, target)
    return _mac(secret, *fields, body_hash(body))


def sign_request(
    secret: str, *, node_id: str, target: str, method: str, path: str, body: bytes, now: int
) -> dict[str, str]:
    """The headers that sign a request sent at `now` (ms) by `node_id` to the node `target`."""
    nonce = secrets.token_hex(16)
    signature = request_signature(
        secret,
        method=method,
        path=path,
        timestamp=now,
        nonce=nonce,
        node_id=node_id,
        target=target,
        body=body,
    )
    return {
        HEADER_NODE: node_id,
        HEADER_TARGET: target,
        HEADER_TIMESTAMP: str(now),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature,
    }


def verify_request(
    secret: str,
    *,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: int,
    window_ms: int,
    remember: Callable[[str], bool],
    self_id: str,
    any_target: bool = False,
) -> SignedRequest:
    """The signed request, if valid, fresh, meant for this node (`self_id`; also ANY_NODE if
    `any_target`) and first seen now; else raise BadSignature.

    `remember(signature)` records the signature and says whether it was new.
    """
    names = (HEADER_NODE, HEADER_TARGET, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
    node_id, target, stamp, nonce, signature = (headers.get(name, "") for name in names)
    if not (node_id and target and stamp and nonce and signature):
        raise BadSignature("unsigned request")
    fields = (node_id, target, stamp, nonce, signature)
    if max(map(len, fields)) > MAX_FIELD or not _decimal(stamp):
        raise BadSignature("malformed signature headers")
    timestamp = int(stamp)
    if abs(now - timestamp) > window_ms:
        raise BadSignature("stale timestamp")
    expected = request_signature(
        secret,
        method=method,
        path=path,
        timestamp=timestamp,
        nonce=nonce,
        node_id=node_id,
        target=target,
        body=body,
    )
    if not _same(expected, signature):
        raise BadSignature("bad signature")
    if target != self_id and not (any_target and target == ANY_NODE):
        raise BadSignature(f"signed for {target!r}, not for this node")
    if not remember(expected):
        raise BadSignature("replayed request")
    return SignedRequest(node_id=node_id, target=target, timestamp=timestamp, signature=expected)


def signature_remember(signature: str, *, window_ms: int) -> bool:
    """Record `signature` in the cache; False if it was already there (a replay).

    A request is accepted while its timestamp is within the window on either side of our clock,
    so it must be remembered for two windows.
    """
    return cache.add(REPLAY_KEY.format(signature), 1, timeout=2 * window_ms / 1000)


def response_signature(
    secret: str, *, request_signature: str, node_id: str, status: int, body: bytes
) -> str:
    """The signature of the answer to the request signed `request_signature`."""
    return _mac(secret, "KVS1-RESPONSE", request_signature, node_id, str(status), body_hash(body))


def sign_response(
    secret: str, *, request_signature: str, node_id: str, status: int, body: bytes
) -> dict[str, str]:
    """The headers that sign an answer."""
    signature = response_signature(
        secret, request_signature=request_signature, node_id=node_id, status=status, body=body
    )
    return {HEADER_NODE: node_id, HEADER_SIGNATURE: signature}


def verify_response(
    secret: str, *, request_signature: str, status: int, body: bytes, headers: Mapping[str, str]
) -> str:
    """The answering node's id, if the answer is signed for our request; else raise BadSignature."""
    node_id, signature = headers.get(HEADER_NODE, ""), headers.get(HEADER_SIGNATURE, "")
    if not (node_id and signature) or max(len(node_id), len(signature)) > MAX_FIELD:
        raise BadSignature("unsigned answer")
    expected = response_signature(
        secret, request_signature=request_signature, node_id=node_id, status=status, body=body
    )
    if not _same(expected, signature):
        raise BadSignature("bad answer signature")
    return node_id
