"""Metrics of the store: versions applied, by where they were written."""

from cluster.node import local_node
from ops.metrics import Counter

from .signals import entry_applied

LOCAL, REPLICATED = "local", "replicated"

WRITES = Counter(
    "kvs_writes_total",
    "Versions applied to this node's store, by origin: local (written on this node) or replicated"
    " (written on a peer). An expiry tombstone counts as its key's writer's.",
    ["origin"],
)
_writes = {origin: WRITES.labels(origin) for origin in (LOCAL, REPLICATED)}


def _on_entry_applied(sender, *, origin: str, **kwargs) -> None:
    _writes[LOCAL if origin == local_node().node_id else REPLICATED].inc()


def connect_metrics() -> None:
    entry_applied.connect(_on_entry_applied, dispatch_uid="kvs-metrics-writes")
