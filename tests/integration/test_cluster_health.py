"""Replica health on three real nodes: with no scheduled anti-entropy and no push sweep, a write
applied straight to node 3's store (a one-shot process that hands nothing to replication) leaves
the cluster not converged in GET /api/v1/cluster/health, and POST /api/v1/cluster/repair with
node 3 brings the roots together, recorded as the last round."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kvsite.cli import node_dir_env

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NODES = (1, 2, 3)
START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
READY_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 60.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DIVERGE = (
    "from kv import services; "
    "[services.entry_put(key=f'diverged/k{i}', value=str(i)) for i in range(5)]"
)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    env = {
        "KVS_AUTH_ENABLED": "true",
        "KVS_ANTI_ENTROPY_INTERVAL": "86400",  # no round but those asked for
        "KVS_PUSH_INTERVAL": "0",  # no sweep: only a node's own commits push
    }
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def health(c: httpx.Client) -> dict:
    response = c.get("/api/v1/cluster/health")
    assert response.status_code == 200, response.text
    return response.json()


def repair(c: httpx.Client, peer: str) -> dict:
    response = c.post("/api/v1/cluster/repair", json={"peer": peer})
    assert response.status_code == 200, response.text
    return response.json()


def roots(view: dict) -> dict[str, str | None]:
    return {node["node_id"]: node["merkle_root"] for node in view["nodes"]}


def test_a_diverged_node_shows_as_not_converged_and_repair_brings_the_roots_together(
    cluster: Launch,
):
    nodes = {index: cluster.client(index, timeout=REQUEST_TIMEOUT_S) for index in NODES}
    try:

        def three_members() -> bool:
            response = nodes[1].get("/api/v1/cluster/members")
            return (
                response.status_code == 200
                and [m["status"] for m in response.json()] == ["alive"] * 3
            )

        wait_for(three_members, timeout=READY_DEADLINE_S, interval=0.5, what="three alive nodes")
        # No scheduled round: node 1 hands its store (the root token) to the others on demand.
        for peer in ("node2", "node3"):
            repair(nodes[1], peer)

        def converged() -> bool:
            for index in (2, 3):  # each ends its first sync with a round of its own
                if nodes[index].get("/api/v1/status").json().get("mode") == "syncing":
                    repair(nodes[index], "node1")
            return health(nodes[1])["converged"]

        wait_for(converged, timeout=READY_DEADLINE_S, interval=1.0, what="a converged cluster")
        view = health(nodes[1])
        assert [n["node_id"] for n in view["nodes"]] == ["node1", "node2", "node3"]
        assert all(n["reachable"] and n["status"] == "alive" for n in view["nodes"])
        assert set(view["nodes"][0]["replication"]) == {"node2", "node3"}
        assert view["nodes"][0]["last_antientropy"]["peer"] in ("node2", "node3")

        # Straight into node 3's store: nothing is pushed, nothing repairs it on a schedule.
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", DIVERGE],
            cwd=PROJECT_ROOT,
            env=node_dir_env(cluster.data / "node3"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        diverged = health(nodes[1])
        assert diverged["converged"] is False
        before = roots(diverged)
        assert before["node1"] == before["node2"] != before["node3"]
        assert nodes[1].get("/api/v1/kv/diverged/k0").status_code == 404

        found = repair(nodes[1], "node3")
        assert found["peer"] == "node3" and found["differing_buckets"] >= 1
        assert found["pulled"] == 5 and found["bytes"] > 0 and found["seconds"] >= 0
        after = roots(health(nodes[1]))
        assert after["node1"] == after["node3"] != before["node1"]
        assert nodes[1].get("/api/v1/kv/diverged/k0").json()["value"] == 0
        last = health(nodes[1])["nodes"][0]["last_antientropy"]
        assert last["peer"] == "node3" and last["differing_buckets"] == found["differing_buckets"]
        assert last["keys_repaired"] == 5

        repair(nodes[1], "node2")  # (node 1's pulls may already be on their way by push)
        wait_for(
            lambda: health(nodes[1])["converged"],
            timeout=READY_DEADLINE_S,
            interval=0.5,
            what="equal roots everywhere after the repairs",
            explain=lambda: roots(health(nodes[1])),
        )
        again = repair(nodes[1], "node3")
        assert again["equal"] is True and again["differing_buckets"] == 0
    finally:
        for c in nodes.values():
            c.close()
