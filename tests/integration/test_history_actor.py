"""History on two real nodes: a version's actor and node replicate with it, and a revert made on
node 2 reaches node 1 as the newest version, written by its reverter on node 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 150.0  # two nodes, one after the other, on a loaded 2-core machine
REPLICATION_DEADLINE_S = 60.0
REQUEST_TIMEOUT_S = 60.0


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    env = {"KVS_AUTH_ENABLED": "true"}
    with kvs_up(tmp_path, nodes=2, env=env, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def versions(c: httpx.Client, key: str) -> list[dict]:
    response = c.get(f"/api/v1/history/{key}")
    return response.json()["versions"] if response.status_code == 200 else []


def newest(c: httpx.Client, key: str) -> str | None:
    """The id of the newest version of `key` on the node of `c` (None: no history yet)."""
    found = versions(c, key)
    return found[0]["version"] if found else None


def test_the_actor_and_node_replicate_with_the_version_and_so_does_a_revert(cluster) -> None:
    one, two = (cluster.client(index, timeout=REQUEST_TIMEOUT_S) for index in (1, 2))
    wait_for(
        lambda: (
            two.get("/api/v1/whoami").status_code == 200
            and two.get("/health").json()["mode"] == "normal"
        ),
        timeout=REPLICATION_DEADLINE_S,
        what="node 2 to take the root token and writes",
    )
    node1 = one.get("/api/v1/status").json()["node_id"]
    node2 = two.get("/api/v1/status").json()["node_id"]
    user = one.get("/api/v1/whoami").json()["username"]
    # Peers exchange current versions: node 2 keeps a history of the versions it received.
    for value in (1, 2):
        put = one.put("/api/v1/kv/hist/doc", json={"v": value})
        assert put.status_code in (200, 201), put.text
        written = put.json()["version"]
        wait_for(
            lambda version=written: newest(two, "hist/doc") == version,
            timeout=REPLICATION_DEADLINE_S,
            what=f"version {value} on node 2",
        )
    seen = versions(two, "hist/doc")
    assert [(v["actor"], v["node"]) for v in seen] == [(user, node1), (user, node1)]
    assert [v["value"] for v in seen] == [{"v": 2}, {"v": 1}]
    first = seen[1]["version"]
    response = two.post("/api/v1/history/hist/doc/revert", json={"version": first})
    assert response.status_code == 200, response.text
    reverted = response.json()["version"]
    wait_for(
        lambda: newest(one, "hist/doc") == reverted,
        timeout=REPLICATION_DEADLINE_S,
        what="the revert on node 1",
    )
    latest = versions(one, "hist/doc")[0]
    assert (latest["value"], latest["actor"], latest["node"]) == ({"v": 1}, user, node2)
    assert one.get("/api/v1/kv/hist/doc").json()["value"] == {"v": 1}
