"""A node's lifecycle on three real nodes: node3 leaves and is forgotten, is out of the cluster
(mode `left`, writes refused, its internal requests refused by the others), and rejoins when the
launcher restarts it: alive everywhere, caught up, taking writes, receiving pub/sub."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from cluster.antientropy import VERSIONS_PATH
from cluster.transport import HttpTransport, TransportError
from kv.hlc import hlc_from_ms, wall_ms
from kv.versions import Version

from .helpers import Launch, health_ok, kvs_up, logs_on_failure, node_groups, signal_group, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NODES = (1, 2, 3)
START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
READY_DEADLINE_S = 60.0
GOSSIP_DEADLINE_S = 15.0
MODE_DEADLINE_S = 5.0  # a node's other processes see its mode within a second
RESTART_DEADLINE_S = 120.0  # the launcher's backoff, then uvicorn and Celery starting again
CATCH_UP_DEADLINE_S = 60.0
EVENT_DEADLINE_S = 20.0
OUT_WINDOW_S = 8.0  # > two anti-entropy rounds and many push sweeps


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    env = {"KVS_AUTH_ENABLED": "true"}
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def get_json(launch: Launch, index: int, path: str) -> object | None:
    """The JSON of a 200 answer, or None (down, restarting, refusing)."""
    try:
        with launch.client(index) as c:
            response = c.get(path, timeout=5.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def mode(launch: Launch, index: int) -> str | None:
    body = get_json(launch, index, "/health")
    return body["mode"] if body else None


def members(launch: Launch, index: int) -> dict[str, dict] | None:
    listed = get_json(launch, index, "/api/v1/cluster/members")
    return None if listed is None else {m["node_id"]: m for m in listed}


def node3_status(launch: Launch, viewers=(1, 2)) -> set[str | None]:
    """node3's status as each viewer sees it (None: not listed, or the viewer did not answer)."""
    views = [members(launch, index) for index in viewers]
    return {
        None if view is None or "node3" not in view else view["node3"]["status"] for view in views
    }


def all_alive_and_normal(launch: Launch) -> bool:
    for index in NODES:
        view = members(launch, index)
        if view is None or {v["status"] for v in view.values()} != {"alive"} or len(view) != 3:
            return False
        if mode(launch, index) != "normal":
            return False
    return True


def value_on(launch: Launch, index: int, key: str) -> object:
    body = get_json(launch, index, f"/api/v1/kv/{key}")
    return None if body is None else body["value"]


def roots_agree(launch: Launch) -> bool:
    roots = [get_json(launch, index, "/api/v1/status") for index in NODES]
    return all(roots) and len({r["merkle_root"] for r in roots}) == 1


def cluster_secret(launch: Launch) -> str:
    return os.environ.get("KVS_CLUSTER_SECRET") or (launch.data / "cluster_secret").read_text()


def version_wire(key: str) -> dict:
    return Version(key, uuid.uuid4(), hlc_from_ms(wall_ms()), "node3", 1, value="3").as_wire()


def stays(check, *, seconds: float, what: str) -> None:
    """Assert that `check()` holds on every poll for `seconds` (an observation window)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert check(), f"{what} stopped holding"
        time.sleep(0.5)


async def first_message(url: str, publish) -> dict:
    """Subscribe at `url`, call `publish()` once the subscription is in place, and return the
    first message that arrives."""
    async with websockets.connect(url) as ws:
        await asyncio.to_thread(publish)
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), EVENT_DEADLINE_S))
            if frame["type"] == "message":
                return frame


def test_a_node_that_left_and_was_forgotten_is_out_until_its_restart_rejoins_it(cluster: Launch):
    wait_for(
        lambda: all_alive_and_normal(cluster),
        timeout=READY_DEADLINE_S,
        interval=0.25,
        what="three alive members everywhere, every node normal",
    )
    n1, n2, n3 = (cluster.client(index) for index in NODES)
    try:
        assert n1.put("/api/v1/kv/life/before", json="before").status_code == 201
        wait_for(
            lambda: value_on(cluster, 3, "life/before") == "before",
            timeout=EVENT_DEADLINE_S,
            what="node3 to receive life/before",
        )

        # Leave on node3, forget on node1 (node2 is told).
        left = n3.post("/api/v1/cluster/leave")
        assert left.status_code == 200, left.text
        assert left.json()["status"] == "left"
        left_incarnation = left.json()["incarnation"]
        wait_for(
            lambda: node3_status(cluster) == {"left"},
            timeout=GOSSIP_DEADLINE_S,
            what="nodes 1 and 2 to list node3 left",
        )
        forgotten = n1.delete("/api/v1/cluster/members/node3")
        assert forgotten.status_code == 200, forgotten.text
        assert forgotten.json() == {
            "node_id": "node3",
            "forgotten_by": ["node1", "node2"],
            "unreachable": [],
        }
        assert node3_status(cluster) == {None}

        # node3 says it left, and refuses client writes (503, so clients try another node).
        wait_for(
            lambda: mode(cluster, 3) == "left",
            timeout=MODE_DEADLINE_S,
            what="node3's /health to say left",
        )
        assert n3.get("/api/v1/status").json()["mode"] == "left"
        refused = n3.put("/api/v1/kv/life/on-node3", json=1)
        assert refused.status_code == 503, refused.text
        assert refused.json()["mode"] == "left"
        assert n3.get("/api/v1/kv/life/before").status_code == 200  # reads still served

        # Nodes 1 and 2 refuse node3's signed internal requests; a member's they take.
        secret = cluster_secret(cluster)
        as_node3 = HttpTransport(node_id="node3", secret=secret, timeout_s=10)
        as_node2 = HttpTransport(node_id="node2", secret=secret, timeout_s=10)
        for index in (1, 2):
            with pytest.raises(TransportError, match="HTTP 403"):
                as_node3.send(
                    cluster.node_url(index),
                    VERSIONS_PATH,
                    {"versions": [version_wire("life/x")]},
                    to=f"node{index}",
                )
        answer = as_node2.send(cluster.node_url(1), VERSIONS_PATH, {"versions": []}, to="node1")
        assert answer == {"applied": 0}
        assert n1.get("/api/v1/kv/life/x").status_code == 404

        # The others stop sending node3 data: a write on node1 reaches node2, never node3.
        assert n1.put("/api/v1/kv/life/while-left", json="meanwhile").status_code == 201
        wait_for(
            lambda: value_on(cluster, 2, "life/while-left") == "meanwhile",
            timeout=EVENT_DEADLINE_S,
            what="node2 to receive life/while-left",
        )
        stays(
            lambda: n3.get("/api/v1/kv/life/while-left").status_code == 404,
            seconds=OUT_WINDOW_S,
            what="node3 not receiving data while it is out",
        )

        # The launcher restarts node3's killed web server and worker: it rejoins.
        for group in node_groups(cluster, 3):
            signal_group(group, signal.SIGKILL)
        wait_for(
            lambda: "kvs: node3 restarted" in cluster.output() and health_ok(cluster.node_url(3)),
            timeout=RESTART_DEADLINE_S,
            interval=0.5,
            what="the launcher to restart node3",
        )
        wait_for(
            lambda: (
                all_alive_and_normal(cluster)
                and roots_agree(cluster)
                and value_on(cluster, 3, "life/while-left") == "meanwhile"
            ),
            timeout=CATCH_UP_DEADLINE_S,
            interval=0.5,
            what="node3 alive on all three, normal, caught up",
            explain=lambda: [(members(cluster, i), mode(cluster, i)) for i in NODES],
        )
        for index in NODES:
            assert members(cluster, index)["node3"]["incarnation"] > left_incarnation
        assert "rejoins at incarnation" in (cluster.data / "node3" / "worker.log").read_text()
        assert value_on(cluster, 3, "life/before") == "before"  # it kept its data

        written = n3.put("/api/v1/kv/life/after", json="from node3")
        assert written.status_code == 201, written.text
        wait_for(
            lambda: value_on(cluster, 1, "life/after") == "from node3",
            timeout=EVENT_DEADLINE_S,
            what="node1 to receive node3's write after the rejoin",
        )

        # Pub/sub: node1 forwards to node3 again.
        url = cluster.node_url(3).replace("http://", "ws://")
        url += f"/ws/v1/pubsub/life/news?token={cluster.token}"

        def publish() -> None:
            wait_for(
                lambda: (
                    {"name": "life/news", "subscribers": 1}
                    in n3.get("/api/v1/pubsub/").json()["topics"]
                ),
                timeout=EVENT_DEADLINE_S,
                what="node3 to count its subscriber",
            )
            sent = n1.post("/api/v1/pubsub/life/news", json={"data": {"hello": "node3"}})
            assert sent.status_code == 202, sent.text

        message = asyncio.run(first_message(url, publish))
        assert (message["data"], message["origin"]) == ({"hello": "node3"}, "node1")
    finally:
        for c in (n1, n2, n3):
            c.close()
