"""The node's metrics: the figures of every process of the node together, not one worker's.

Metrics are declared once, beside the code they measure, with the classes this module exports
(prometheus_client's), and updated in services. Their values live in the node's metrics directory
(KVS_METRICS_DIR, ops/multiproc.py), where a scrape adds up every process's files and the
collectors of `ops.collectors` add what is read from the database at scrape time.

Other apps import these classes from here, never from prometheus_client itself: importing `ops`
first is what makes them the node's (ops/__init__.py).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from . import METRICS_DIR, multiproc

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the Prometheus text format that every Prometheus reads

# What a scrape answers: the processes' files, then the collectors registered by ops.collectors.
node_registry = CollectorRegistry(auto_describe=True)
MultiProcessCollector(node_registry, path=str(METRICS_DIR))


def metrics_render() -> bytes:
    """The node's metrics in the Prometheus text format (after forgetting the live gauges of
    processes that have ended)."""
    multiproc.dead_processes_sweep(METRICS_DIR)
    return generate_latest(node_registry)


__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Histogram", "metrics_render", "node_registry"]
