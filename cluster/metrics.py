"""Metrics of replication and anti-entropy, per peer (peers are members: a bounded set)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ops.metrics import Counter

if TYPE_CHECKING:
    from .antientropy import SyncReport

PUSH_BATCHES = Counter(
    "kvs_replication_push_batches_total", "Push batches the peer accepted.", ["peer"]
)
PUSH_VERSIONS = Counter(
    "kvs_replication_push_versions_total", "Versions pushed to the peer (accepted).", ["peer"]
)
PUSH_FAILURES = Counter(
    "kvs_replication_push_failures_total",
    "Push batches that failed (the peer keeps its cursor; a later push resends them).",
    ["peer"],
)
ANTIENTROPY_ROUNDS = Counter(
    "kvs_antientropy_rounds_total",
    "Anti-entropy exchanges this node started, by outcome: equal (the trees agreed), repaired"
    " (buckets differed and were exchanged) or failed.",
    ["peer", "outcome"],
)
ANTIENTROPY_BUCKETS = Counter(
    "kvs_antientropy_differing_buckets_total",
    "Merkle buckets found to differ from the peer's.",
    ["peer"],
)
ANTIENTROPY_KEYS = Counter(
    "kvs_antientropy_keys_repaired_total",
    "Versions anti-entropy moved: pulled (newer on the peer, applied here) or pushed (to it).",
    ["peer", "direction"],
)
ANTIENTROPY_BYTES = Counter(
    "kvs_antientropy_bytes_total",
    "JSON bytes of anti-entropy messages: sent to the peer, received from it.",
    ["peer", "direction"],
)

WIRE_BYTES = Counter(
    "kvs_cluster_bytes_total",
    "Bytes of node-to-node bodies this node sent and received as a client, per internal path:"
    " as on the wire (form=wire, compressed from KVS_COMPRESS_MIN_BYTES) and as JSON (form=json).",
    ["path", "direction", "form"],
)


def wire_counted(*, path: str, direction: str, wire: int, plain: int) -> None:
    """One body of `plain` JSON bytes that crossed the wire as `wire` bytes."""
    WIRE_BYTES.labels(path, direction, "wire").inc(wire)
    WIRE_BYTES.labels(path, direction, "json").inc(plain)


def push_counted(*, peer: str, versions: int) -> None:
    """One batch of `versions` the peer accepted."""
    PUSH_BATCHES.labels(peer).inc()
    PUSH_VERSIONS.labels(peer).inc(versions)


def push_failure_counted(*, peer: str) -> None:
    PUSH_FAILURES.labels(peer).inc()


def antientropy_counted(*, peer: str, report: SyncReport | None) -> None:
    """One exchange with `peer`: what it did, or None if it failed."""
    if report is None:
        ANTIENTROPY_ROUNDS.labels(peer, "failed").inc()
        return
    ANTIENTROPY_ROUNDS.labels(peer, "equal" if report.equal else "repaired").inc()
    ANTIENTROPY_BUCKETS.labels(peer).inc(len(report.buckets))
    ANTIENTROPY_KEYS.labels(peer, "pulled").inc(report.pulled)
    ANTIENTROPY_KEYS.labels(peer, "pushed").inc(report.pushed)
    ANTIENTROPY_BYTES.labels(peer, "sent").inc(report.bytes_sent)
    ANTIENTROPY_BYTES.labels(peer, "received").inc(report.bytes_received)
