"""Reading the node's metrics in tests, as a scraper reads them: rendered, then parsed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ops.metrics import metrics_render


def samples(name: str, **labels: str) -> list[Sample]:
    """The samples named `name` (e.g. `kvs_writes_total`) whose labels include `labels`."""
    found = []
    for family in text_string_to_metric_families(metrics_render().decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                found.append(s)
    return found


def value(name: str, **labels: str) -> float:
    """The sum of the samples `samples(name, **labels)` (0 if there is none)."""
    return sum(s.value for s in samples(name, **labels))
