"""Clock skew under libfaketime: node2's clock runs an hour ahead, node3's an hour behind, and
node3's jumps back another hour while it runs (tests/faults/faketime/sitecustomize.py fakes the
wall clock of one node's web server and worker; the monotonic clock stays real).

The hybrid logical clock must keep causality: a write a node makes after it has seen a version
(replicated to it, or read there) orders after that version, whatever the clocks say, and wins
on every node; after a backwards jump a node's new versions still order after its earlier ones.
TTLs are wall-clock deadlines and follow the writer's clock: what that does is checked here and
stated in the README's Limitations.

The signature window is widened to 3 h so that an hour of skew does not cut the nodes apart; the
last test shows what a node beyond the window sees: its peers refuse it, and it comes back once
its clock does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.clocks import faketime_env, offset_set
from tests.faults.workload import merkle_converged, nodes_of

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOUR_MS = 3_600_000
START_DEADLINE_S = 180.0
WINDOW_S = 3 * 3600  # KVS_SIGNATURE_WINDOW: wider than the skew
SLACK_MS = 120_000  # a loaded machine's delays between a request and what it is compared with


class Skewed:
    """A running cluster and the libfaketime offset files of its skewed nodes."""

    def __init__(self, launch: Launch, files: dict[int, Path]) -> None:
        self.launch, self.files = launch, files
        self.urls = [launch.node_url(i) for i in (1, 2, 3)]

    def set_offset(self, index: int, seconds: int) -> None:
        """Move node `index`'s wall clock to `seconds` from the real one, at once."""
        offset_set(self.files[index], seconds)

    def put(self, index: int, key: str, value: object, **params) -> dict:
        answer = httpx.put(
            f"{self.urls[index - 1]}/api/v1/kv/{key}", json=value, params=params, timeout=10
        )
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def get(self, index: int, key: str) -> httpx.Response:
        return httpx.get(f"{self.urls[index - 1]}/api/v1/kv/{key}", timeout=10)

    def top(self, index: int, key: str) -> dict | None:
        """The key's current version on node `index` (tombstones and expired ones included)."""
        answer = httpx.get(f"{self.urls[index - 1]}/api/v1/history/{key}", timeout=10)
        return answer.json()["versions"][0] if answer.status_code == 200 else None

    def wall_ms(self, index: int) -> int:
        """Node `index`'s wall clock as its write path reads it: a TTL's expiry minus the TTL."""
        key = f"clock/probe/node{index}"  # its own: a concurrent probe could win elsewhere
        body = self.put(index, key, True, ttl="600s")
        answer = self.get(index, key).json()
        assert answer["version"] == body["version"]
        return answer["expires_at"] - 600_000

    def everywhere(self, key: str, version: str, *, timeout: float = 60) -> None:
        """Wait until every node's current version of `key` is `version`."""
        wait_for(
            lambda: all((self.top(i, key) or {}).get("version") == version for i in (1, 2, 3)),
            timeout=timeout,
            what=f"{key} at {version} on every node",
            explain=lambda: [self.top(i, key) for i in (1, 2, 3)],
        )

    def status(self, observer: int, node_id: str) -> str | None:
        members = httpx.get(f"{self.urls[observer - 1]}/api/v1/cluster/members", timeout=10)
        return {m["node_id"]: m["status"] for m in members.json()}.get(node_id)


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skewed]:
    tmp = tmp_path_factory.mktemp("skew")
    files = {2: tmp / "node2.faketime", 3: tmp / "node3.faketime"}
    files[2].write_text("+3600\n")
    files[3].write_text("-3600\n")
    env = {
        "KVS_AUTH_ENABLED": "false",
        "KVS_THROTTLE_ANON": "",
        "KVS_SIGNATURE_WINDOW": str(WINDOW_S),
        **faketime_env(files),
    }
    with kvs_up(tmp, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launch:
        cluster = Skewed(launch, files)
        wait_for(lambda: all(serving(u) for u in cluster.urls), timeout=120, what="3 nodes")
        yield cluster


@pytest.fixture
def cluster(request: pytest.FixtureRequest, skewed: Skewed) -> Iterator[Skewed]:
    with logs_on_failure(request, skewed.launch):
        yield skewed


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_the_skewed_nodes_run_an_hour_ahead_and_behind(cluster: Skewed):
    real = now_ms()
    assert abs(cluster.wall_ms(1) - real) < SLACK_MS
    assert abs(cluster.wall_ms(2) - real - HOUR_MS) < SLACK_MS
    assert abs(cluster.wall_ms(3) - real + HOUR_MS) < SLACK_MS
    # The workers run on the same clocks: node2's worker records its rounds an hour ahead.
    health = httpx.get(f"{cluster.urls[0]}/api/v1/cluster/health", timeout=30).json()
    rounds = {n["node_id"]: (n.get("last_antientropy") or {}).get("at") for n in health["nodes"]}
    if rounds.get("node2"):
        assert rounds["node2"] - now_ms() > HOUR_MS - SLACK_MS


@pytest.mark.parametrize("writer", [1, 3])
def test_a_write_after_seeing_a_version_from_a_clock_ahead_orders_after_it(
    cluster: Skewed, writer: int
):
    key = f"skew/ahead/{writer}"
    seen = cluster.put(2, key, {"from": "node2, an hour ahead"})
    wait_for(
        lambda: cluster.get(writer, key).json().get("version") == seen["version"],
        timeout=60,
        what=f"node{writer} to have node2's version",
    )
    later = cluster.put(writer, key, {"from": f"node{writer}, after reading node2's"})
    assert later["hlc"] > seen["hlc"], (later, seen)
    cluster.everywhere(key, later["version"])
    # The same through cas, naming the version the node was read at.
    key = f"skew/ahead/cas/{writer}"
    seen = cluster.put(2, key, 1)
    wait_for(
        lambda: cluster.get(writer, key).json().get("version") == seen["version"],
        timeout=60,
        what=f"node{writer} to have node2's version",
    )
    later = cluster.put(writer, key, 2, cas=seen["version"])
    assert later["hlc"] > seen["hlc"]
    cluster.everywhere(key, later["version"])


def test_a_clock_behind_still_orders_its_writes_after_what_it_has_seen(cluster: Skewed):
    key = "skew/behind"
    seen = cluster.put(1, key, {"from": "node1"})
    wait_for(
        lambda: cluster.get(3, key).json().get("version") == seen["version"],
        timeout=60,
        what="node3 to have node1's version",
    )
    later = cluster.put(3, key, {"from": "node3, an hour behind"})
    assert later["hlc"] > seen["hlc"]
    assert later["timestamp"] >= seen["timestamp"] or later["hlc"] > seen["hlc"]
    cluster.everywhere(key, later["version"])


def test_after_a_jump_backwards_a_node_s_new_versions_order_after_its_earlier_ones(
    cluster: Skewed,
):
    key = "skew/jump"
    before = [cluster.put(3, key, n)["hlc"] for n in range(3)]
    wall_before = cluster.wall_ms(3)
    cluster.set_offset(3, -2 * 3600)  # another hour back, while it runs
    wait_for(
        lambda: cluster.wall_ms(3) < wall_before - HOUR_MS + SLACK_MS,
        timeout=30,
        what="node3's clock to jump back",
    )
    after = cluster.put(3, key, "after the jump")
    assert after["hlc"] > max(before)
    cluster.everywhere(key, after["version"])
    # It keeps replicating both ways after the jump.
    from_node1 = cluster.put(1, "skew/jump/from1", "to node3")
    cluster.everywhere("skew/jump/from1", from_node1["version"])
    nodes = nodes_of(cluster.urls)
    took, converged = merkle_converged(nodes, None, timeout=60)
    assert converged, f"Merkle roots still differ after {took:.0f} s"
    cluster.set_offset(3, -3600)


def test_a_ttl_follows_the_writer_s_clock(cluster: Skewed):
    # Written an hour ahead with a 10-minute TTL: every other node keeps it an hour longer.
    ahead = cluster.put(2, "skew/ttl/ahead", "v", ttl="600s")
    cluster.everywhere("skew/ttl/ahead", ahead["version"])
    expires = cluster.get(1, "skew/ttl/ahead").json()["expires_at"]
    assert expires - now_ms() > HOUR_MS
    # Written an hour behind with a 10-minute TTL: already expired on every node but its own.
    behind = cluster.put(3, "skew/ttl/behind", "v", ttl="600s")
    wait_for(
        lambda: (
            (cluster.top(1, "skew/ttl/behind") or {}).get("version") == behind["version"]
            or (cluster.top(1, "skew/ttl/behind") or {}).get("deleted")
        ),
        timeout=60,
        what="node1 to have node3's TTL write",
    )
    assert cluster.get(1, "skew/ttl/behind").status_code == 404
    assert cluster.get(3, "skew/ttl/behind").status_code == 200


def test_a_node_beyond_the_signature_window_is_cut_off_until_its_clock_returns(
    cluster: Skewed,
):
    cluster.set_offset(2, WINDOW_S + 3600)  # now 4 h ahead: outside the 3 h window
    try:
        wait_for(
            lambda: cluster.status(1, "node2") in ("suspect", "dead"),
            timeout=60,
            what="node1 to suspect node2",
        )
    finally:
        cluster.set_offset(2, 3600)
    wait_for(
        lambda: cluster.status(1, "node2") == "alive" and cluster.status(2, "node1") == "alive",
        timeout=90,
        what="node2 alive again once its clock is back within the window",
    )
    back = cluster.put(2, "skew/back", "after")
    cluster.everywhere("skew/back", back["version"], timeout=90)


def serving(url: str) -> bool:
    """Whether the node at `url` takes writes: healthy and done syncing."""
    try:
        return httpx.get(f"{url}/health", timeout=5).json().get("mode") == "normal"
    except (httpx.HTTPError, ValueError):
        return False
