"""Figures read at scrape time from the node's database (the same for whichever process scrapes):
keys, tombstones, revision, members by status, each peer's replication lag, the database's size,
the last backup, and the node's identity."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

import kvsite
from cluster.node import local_node, node_mode
from cluster.replication import replication_lags
from cluster.selectors import members_count
from kv.selectors import live_key_count, store_state, tombstone_count

from .events import backup_last_success
from .metrics import node_registry
from .selectors import database_size_bytes

log = logging.getLogger(__name__)


def _gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _families() -> dict[str, GaugeMetricFamily]:
    """Every family of this collector, without samples."""
    families = [
        _gauge("kvs_keys", "Live keys: neither deleted nor expired (the cluster's own excepted)."),
        _gauge("kvs_tombstones", "Tombstones kept (deleted keys, until KVS_TOMBSTONE_TTL)."),
        _gauge("kvs_revision", "This node's revision: the changes it has applied, local or not."),
        _gauge(
            "kvs_members",
            "Members of the cluster as this node sees them, itself included.",
            ("status",),
        ),  # fmt: skip
        _gauge(
            "kvs_replication_lag_revisions",
            "Changes applied here that push replication has not delivered to the peer.",
            ("peer",),
        ),  # fmt: skip
        _gauge(
            "kvs_replication_lag_seconds",
            "Age of the oldest change not yet delivered to the peer (0: none).",
            ("peer",),
        ),  # fmt: skip
        _gauge("kvs_database_size_bytes", "Size of this node's database."),
        _gauge(
            "kvs_backup_last_success_timestamp_seconds",
            "When the newest complete backup of this node was made (seconds since the epoch).",
        ),
        _gauge(
            "kvs_node_info",
            "This node: its id, software version and mode (always 1).",
            ("node_id", "version", "mode"),
        ),  # fmt: skip
    ]
    return {family.name: family for family in families}


class NodeCollector:
    """The figures that live in the database, read when Prometheus asks."""

    def describe(self) -> list[Metric]:
        return list(_families().values())  # lets the registry skip a collect() when registering

    def collect(self) -> list[Metric]:
        families = _families()
        try:
            self._fill(families)
        except DatabaseError as error:  # a busy database: serve the processes' figures anyway
            log.warning("metrics: the database could not be read: %s", error)
            return []
        return list(families.values())

    def _fill(self, families: dict[str, GaugeMetricFamily]) -> None:
        families["kvs_keys"].add_metric([], live_key_count())
        families["kvs_tombstones"].add_metric([], tombstone_count())
        families["kvs_revision"].add_metric([], store_state().revision)
        for status, count in members_count().items():
            families["kvs_members"].add_metric([status], count)
        for peer, lag in sorted(replication_lags().items()):
            families["kvs_replication_lag_revisions"].add_metric([peer], lag.revisions)
            families["kvs_replication_lag_seconds"].add_metric([peer], lag.seconds)
        families["kvs_database_size_bytes"].add_metric([], database_size_bytes())
        backup_at = backup_last_success()
        if backup_at is not None:
            families["kvs_backup_last_success_timestamp_seconds"].add_metric([], backup_at)
        node = [local_node().node_id, kvsite.__version__, node_mode()]
        families["kvs_node_info"].add_metric(node, 1)


_connected = False


def connect_collectors() -> None:
    """Add the database's figures to what this process's scrapes answer (once)."""
    global _connected
    if not _connected:
        node_registry.register(NodeCollector())
        _connected = True
