"""Metrics of the store: versions applied, by where they were written."""

from cluster.node import local_node
from ops.metrics import Counter

from .signals import Change, entries_applied

LOCAL, REPLICATED = "local", "replicated"

WRITES = Counter(
    "kvs_writes_total",
    "Versions applied to this node's store, by origin: local (written on this node) or replicated"
    " (written on a peer). An expiry tombstone counts as its key's writer's.",
    ["origin"],
)
_writes = {origin: WRITES.labels(origin) for origin in (LOCAL, REPLICATED)}


def _on_entries_applied(sender, *, changes: list[Change], **kwargs) -> None:
    local = sum(change.origin == local_node().node_id for change in changes)
    if local:
        _writes[LOCAL].inc(local)
    if len(changes) > local:
        _writes[REPLICATED].inc(len(changes) - local)


def connect_metrics() -> None:
    entries_applied.connect(_on_entries_applied, dispatch_uid="kvs-metrics-writes")
