"""The Grafana dashboard (docs/grafana-dashboard.json) is built on the node's metric families:
every name it queries is one the node declares, every family has a panel, and every query is
PromQL that Prometheus accepts."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from ops.collectors import NodeCollector

DASHBOARD = Path(settings.BASE_DIR) / "docs" / "grafana-dashboard.json"
# Every module that declares metrics (each is imported by the node's processes as they run).
METRIC_MODULES = [
    "cluster.metrics",
    "kv.metrics",
    "kvsite.realtime",
    "ops.events",
    "ops.middleware",
    "pubsub.metrics",
]
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
NAME = re.compile(r"\bkvs_[a-zA-Z0-9_]+")
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}


def declared() -> dict[str, set[str]]:
    """Family name -> the sample names it exposes, for every kvs_ family of the code."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    families = [f for f in REGISTRY.collect() if f.name.startswith("kvs_")]
    families += NodeCollector().describe()
    return {f.name: {f.name + suffix for suffix in SUFFIXES[f.type]} for f in families}


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables' queries."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("expr", "definition") and isinstance(item, str):
                    found.append(item)
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def test_every_name_the_dashboard_queries_is_a_metric_of_the_node():
    exposed = set().union(*declared().values())
    used = {name for expr in expressions() for name in NAME.findall(expr)}
    assert used, "the dashboard queries no kvs_ metric"
    assert used <= exposed, sorted(used - exposed)


def test_every_metric_family_has_a_panel():
    used = {name for expr in expressions() for name in NAME.findall(expr)}
    missing = [family for family, names in declared().items() if not names & used]
    assert missing == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (apt prometheus)")
def test_every_query_is_promql_that_prometheus_accepts(tmp_path):
    rules = []
    for index, expr in enumerate(e for e in expressions() if not e.startswith("label_values(")):
        for variable, stand_in in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, stand_in)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # YAML too
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found".encode() in checked.stdout
