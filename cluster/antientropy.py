"""Merkle anti-entropy: find the keys two nodes disagree on by walking only differing branches,
then pull what the peer has newer and push what this node has newer.

Walk: ask the peer for the root; if it differs, for the children of each differing node, level
by level down to the leaves (key-hash buckets). For the differing buckets, send this node's
`(key, version, hlc, origin_joined_at)` list; the peer answers with its versions that are newer
or missing here, and names the keys it wants; those are pushed. Equal trees cost one message,
and the cost grows with the difference, not with the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from django.conf import settings

from kv import selectors, services
from kv.merkle import bucket_of, node_children, node_hash, tree_depth
from kv.versions import Version, version_order

from .metrics import antientropy_counted
from .rounds import antientropy_round_record
from .transport import Transport, TransportError
from .wire import (
    BUCKETS_PER_MESSAGE,
    WireError,
    digests_answer_parse,
    merkle_answer_parse,
    version_problem,
)

MERKLE_PATH = "/cluster/internal/merkle"
DIGESTS_PATH = "/cluster/internal/digests"
VERSIONS_PATH = "/cluster/internal/versions"
VERSIONS_PER_MESSAGE = 500
DIGEST_OVERHEAD = 80  # JSON bytes of a digest besides its key: UUID, two integers, punctuation

Digest = tuple[str, str, int, int]  # key, version, hlc, origin_joined_at
log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one anti-entropy exchange did."""

    equal: bool = False
    peer_syncing: bool = False  # the peer is itself still in its first sync
    messages: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    buckets: list[int] = field(default_factory=list)
    pulled: int = 0
    pushed: int = 0
    seconds: float = 0.0


class _Link:
    """The transport to one peer, counting messages and JSON bytes both ways."""

    def __init__(self, transport: Transport, report: SyncReport, url: str, node_id: str) -> None:
        self._transport, self._report = transport, report
        self._url, self._node_id = url, node_id

    def send(self, path: str, payload: dict) -> dict:
        answer = self._transport.send(self._url, path, payload, to=self._node_id)
        self._report.messages += 1
        self._report.bytes_sent += len(orjson.dumps(payload))
        self._report.bytes_received += len(orjson.dumps(answer))
        return answer


def digest_order(digest: Digest) -> tuple[int, int, int]:
    """The version order (kv/versions.py) of the version a digest names."""
    _, version, hlc, joined = digest
    return version_order(hlc=hlc, origin_joined_at=joined, version=version)


# --- The asking side -----------------------------------------------------------------------------


def merkle_sync(transport: Transport, peer_url: str, *, peer_id: str) -> SyncReport:
    """Make this node and the peer `peer_id` at `peer_url` agree; safe to repeat (applying is
    idempotent). An answer that is not what was asked for raises TransportError.

    The round is counted (cluster.metrics) and recorded as the last with that peer
    (cluster.rounds), whether it succeeded or not."""
    started = time.monotonic()
    try:
        report = _exchange(transport, peer_url, peer_id=peer_id)
    except Exception:
        antientropy_counted(peer=peer_id, report=None)
        antientropy_round_record(peer=peer_id, report=None, seconds=time.monotonic() - started)
        raise
    report.seconds = time.monotonic() - started
    antientropy_counted(peer=peer_id, report=report)
    antientropy_round_record(peer=peer_id, report=report, seconds=report.seconds)
    return report


def _exchange(transport: Transport, peer_url: str, *, peer_id: str) -> SyncReport:
    report = SyncReport()
    link = _Link(transport, report, peer_url, peer_id)
    buckets = _differing_buckets(link, selectors.merkle_leaves(), report)
    if buckets is None:
        report.equal = True
        return report
    report.buckets = buckets
    for chunk, mine in _digest_messages(buckets):
        answer = link.send(DIGESTS_PATH, {"buckets": chunk, "digests": mine})
        theirs, want = _checked(
            digests_answer_parse, answer, buckets=chunk, asked={d[0] for d in mine}
        )
        report.pulled += services.versions_apply(theirs)
        report.pushed += _push_keys(link, want)
    return report


def _checked(parse, answer: dict, **expected):
    """`parse(answer, **expected)`, a bad answer being a failed exchange (TransportError)."""
    try:
        return parse(answer, **expected)
    except WireError as error:
        raise TransportError(f"the peer's answer is malformed: {error.detail}") from None


def _digest_messages(buckets: list[int]) -> Iterator[tuple[list[int], list[Digest]]]:
    """The differing buckets with this node's digests in them, in messages of at most
    BUCKETS_PER_MESSAGE buckets and about KVS_PUSH_BATCH_BYTES bytes (a bucket is never split:
    the peer answers for whole buckets)."""
    budget = settings.KVS_PUSH_BATCH_BYTES
    for start in range(0, len(buckets), BUCKETS_PER_MESSAGE):
        by_bucket: dict[int, list[Digest]] = {
            b: [] for b in buckets[start : start + BUCKETS_PER_MESSAGE]
        }
        for digest in selectors.bucket_digests(buckets=list(by_bucket)):
            by_bucket[bucket_of(digest[0])].append(digest)
        chunk: list[int] = []
        mine: list[Digest] = []
        size = 0
        for bucket, digests in by_bucket.items():
            weight = 6 + sum(len(d[0].encode()) + DIGEST_OVERHEAD for d in digests)
            if chunk and size + weight > budget:
                yield chunk, mine
                chunk, mine, size = [], [], 0
            chunk.append(bucket)
            mine += digests
            size += weight
        if chunk:
            yield chunk, mine


def _differing_buckets(link: _Link, leaves: dict[int, str], report: SyncReport) -> list[int] | None:
    """The buckets whose hashes differ from the peer's, or None when the roots agree.

    A level asks for the children of the differing nodes above it: at most FANOUT**level distinct
    nodes, i.e. all KVS_MERKLE_BUCKETS leaves at the last level, which the peer accepts."""
    level, nodes = 0, [0]
    depth = tree_depth()
    while True:
        answer = link.send(MERKLE_PATH, {"level": level, "nodes": nodes})
        hashes, syncing = _checked(merkle_answer_parse, answer, nodes=nodes)
        report.peer_syncing = report.peer_syncing or syncing
        differing = [
            node
            for node, theirs in zip(nodes, hashes, strict=True)
            if theirs != node_hash(leaves, level, node)
        ]
        if not differing:
            return None if level == 0 else []
        if level == depth:
            return differing
        level += 1
        nodes = [child for node in differing for child in node_children(node)]


def _push_keys(link: _Link, keys: list[str]) -> int:
    pushed = 0
    for start in range(0, len(keys), VERSIONS_PER_MESSAGE):
        versions = versions_sendable(
            selectors.versions_of(keys=keys[start : start + VERSIONS_PER_MESSAGE])
        )
        for chunk in versions_by_size(versions, settings.KVS_PUSH_BATCH_BYTES):
            link.send(VERSIONS_PATH, {"versions": chunk})
            pushed += len(chunk)
    return pushed


def versions_sendable(versions: list[Version]) -> list[dict]:
    """The wire form of the versions a peer will take; the others (stored before peers' input
    was checked, e.g. a value that is not JSON) are left out with a warning, so that one of them
    does not block every message it would travel in."""
    sendable = []
    for v in versions:
        problem = version_problem(v)
        if problem is None:
            sendable.append(v.as_wire())
        else:
            log.warning("not replicating %r: a peer would refuse it (%s)", v.key, problem)
    return sendable


def versions_by_size(versions: list[dict], limit: int) -> list[list[dict]]:
    """Split wire-form versions into messages of at most about `limit` bytes of JSON (a larger
    version goes alone)."""
    chunks: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for v in versions:
        weight = len(orjson.dumps(v)) + 1
        if current and size + weight > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(v)
        size += weight
    if current:
        chunks.append(current)
    return chunks


# --- The answering side --------------------------------------------------------------------------


def merkle_answer(*, level: int, nodes: list[int]) -> dict:
    """This node's hashes of the tree nodes asked for."""
    from .node import node_syncing

    leaves = selectors.merkle_leaves()
    answer: dict = {"hashes": [node_hash(leaves, level, node) for node in nodes]}
    if level == 0:
        answer["syncing"] = node_syncing()  # a syncing peer cannot end someone else's sync
    return answer


def digests_answer(*, buckets: list[int], digests: list[Digest]) -> dict:
    """Our versions that beat (or are missing from) the asker's, and the keys we want."""
    theirs = {d[0]: tuple(d) for d in digests}
    mine = {d[0]: d for d in selectors.bucket_digests(buckets=buckets)}
    give = [
        k for k, d in mine.items() if k not in theirs or digest_order(d) > digest_order(theirs[k])
    ]
    want = [
        k for k, d in theirs.items() if k not in mine or digest_order(d) > digest_order(mine[k])
    ]
    versions = selectors.versions_of(keys=give) if give else []
    return {"versions": versions_sendable(versions), "want": want}


def versions_receive(*, versions: list[Version]) -> dict:
    """Apply versions pushed by a peer (replication or anti-entropy), already checked by
    `cluster.wire.versions_parse`."""
    return {"applied": services.versions_apply(versions)}
