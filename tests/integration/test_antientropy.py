"""Merkle anti-entropy alone converges three real nodes: push replication is off (no push after
commits, no push sweep), the nodes diverge — keys of their own, conflicting versions of the same
keys, deletes — and by a deadline every node holds the same versions and the same Merkle root."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NODES = (1, 2, 3)
START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
READY_DEADLINE_S = 90.0  # the root token reaches nodes 2 and 3 by anti-entropy alone
CONVERGE_DEADLINE_S = 120.0
OWN_KEYS = 20
SHARED_KEYS = 10


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    env = {"KVS_AUTH_ENABLED": "true", "KVS_PUSH_ON_COMMIT": "false", "KVS_PUSH_INTERVAL": "0"}
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def status_of(c: httpx.Client) -> dict | None:
    try:
        response = c.get("/api/v1/status", timeout=5.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def newest(c: httpx.Client, key: str) -> tuple[str, bool, str] | None:
    """(version, deleted, value as JSON) of the newest version of `key` on a node, tombstones
    included."""
    response = c.get(f"/api/v1/history/{key}", timeout=5.0)
    if response.status_code != 200:
        return None
    version = response.json()["versions"][0]
    return version["version"], version["deleted"], json.dumps(version["value"], sort_keys=True)


def pushed_cursors(launch: Launch, index: int) -> list[tuple[str, int]]:
    """Node `index`'s push cursors: a row appears when a push to a peer is first tried."""
    path = launch.data / f"node{index}" / "kvsite.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute("SELECT node_id, revision FROM cluster_peercursor").fetchall()


def test_anti_entropy_alone_converges_three_diverged_nodes(cluster: Launch):
    nodes = {index: cluster.client(index) for index in NODES}
    try:

        def ready() -> bool:
            for c in nodes.values():  # 401 on nodes 2 and 3 until the root token arrives
                st = status_of(c)
                if st is None or st["mode"] != "normal" or st["members"]["alive"] != 3:
                    return False
            return True

        wait_for(ready, timeout=READY_DEADLINE_S, interval=0.5, what="three normal nodes")

        # Each node: keys of its own, then its version of every shared key.
        written: dict[str, list[dict]] = {}
        for index, c in nodes.items():
            for j in range(OWN_KEYS):
                answer = c.put(f"/api/v1/kv/ae/n{index}/k{j:02d}", json={"node": index, "j": j})
                assert answer.status_code == 201, answer.text
            for j in range(SHARED_KEYS):
                answer = c.put(f"/api/v1/kv/ae/shared/s{j}", json={"node": index})
                # New on each node (diverged), unless a round already brought another's: then
                # this write replaces it, a conflict resolved the same way.
                assert answer.status_code in (200, 201), answer.text
                written.setdefault(f"ae/shared/s{j}", []).append(answer.json())
        # Deletes: a key of node1's deleted there, a key written and deleted on node3 (only its
        # tombstone exists), and a shared key deleted on node2 after every node wrote it.
        assert nodes[1].delete("/api/v1/kv/ae/n1/k00").status_code == 204
        assert nodes[3].put("/api/v1/kv/ae/gone", json=0).status_code == 201
        assert nodes[3].delete("/api/v1/kv/ae/gone").status_code == 204
        assert nodes[2].delete("/api/v1/kv/ae/shared/s0").status_code == 204

        def roots_agree() -> bool:
            roots = [status_of(c) for c in nodes.values()]
            return all(roots) and len({st["merkle_root"] for st in roots}) == 1

        wait_for(
            roots_agree,
            timeout=CONVERGE_DEADLINE_S,
            interval=0.5,
            what="equal Merkle roots on the three nodes",
            explain=lambda: [status_of(c) for c in nodes.values()],
        )

        keys = [f"ae/n{i}/k{j:02d}" for i in NODES for j in range(OWN_KEYS)]
        keys += [f"ae/shared/s{j}" for j in range(SHARED_KEYS)] + ["ae/gone"]
        for key in keys:
            seen = {index: newest(c, key) for index, c in nodes.items()}
            assert len(set(seen.values())) == 1 and None not in seen.values(), (key, seen)
        assert newest(nodes[3], "ae/n1/k00")[1] is True  # tombstones travelled too
        assert newest(nodes[1], "ae/gone")[1] is True
        assert newest(nodes[1], "ae/shared/s0")[1] is True  # the delete came after every write
        for j in range(1, SHARED_KEYS):
            versions = written[f"ae/shared/s{j}"]
            latest = max(versions, key=lambda v: v["timestamp"])
            if [v["timestamp"] for v in versions].count(latest["timestamp"]) == 1:
                assert newest(nodes[1], f"ae/shared/s{j}")[0] == latest["version"]
        listed = {
            index: [item["key"] for item in c.get("/api/v1/kv/?prefix=ae/&keys=1").json()["items"]]
            for index, c in nodes.items()
        }
        assert listed[1] == listed[2] == listed[3] and len(listed[1]) == len(keys) - 3

        # And push really was off: no node ever tried to push to a peer.
        assert {index: pushed_cursors(cluster, index) for index in NODES} == {1: [], 2: [], 3: []}
    finally:
        for c in nodes.values():
            c.close()
