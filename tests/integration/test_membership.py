"""Gossip membership across three real nodes: join, a frozen node, its recovery, a killed node,
forgetting it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import (
    Launch,
    kvs_up,
    logs_on_failure,
    node_groups,
    signal_group,
    stop_launcher,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
JOIN_DEADLINE_S = 30.0
DETECT_DEADLINE_S = 10.0
RECOVER_DEADLINE_S = 30.0
POLL_S = 0.1
# The launcher restarts a killed node; it waits this long first, so that the others can see the
# killed node dead before it comes back.
RESTART_DELAY_S = DETECT_DEADLINE_S + 10.0


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    # Auth off: this test is about membership, and must not depend on how seeded nodes get
    # their root credential. The internal API is signed regardless.
    env = {"KVS_AUTH_ENABLED": "false"}
    args = ["--restart-delay", str(RESTART_DELAY_S)]
    with kvs_up(tmp_path, nodes=3, env=env, args=args, start_deadline=START_DEADLINE_S) as launched:
        try:
            with logs_on_failure(request, launched):
                yield launched
        finally:
            for group in node_groups(launched, 3, quiet=True):
                signal_group(group, signal.SIGCONT)  # let a frozen node hear the stop signal


def statuses(launch: Launch, index: int) -> dict[str, str] | None:
    """node_id -> status as node `index` sees it, or None if it does not answer."""
    try:
        response = httpx.get(f"{launch.node_url(index)}/api/v1/cluster/members", timeout=2.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return {member["node_id"]: member["status"] for member in response.json()}


def node3_seen_as(launch: Launch, wanted: set[str], viewers=(1, 2)) -> bool:
    """Whether every viewer sees node3 with one of the `wanted` statuses."""
    views = [statuses(launch, index) for index in viewers]
    return all(view is not None and view.get("node3") in wanted for view in views)


def all_alive(launch: Launch, viewers=(1, 2, 3)) -> bool:
    """Whether every viewer sees the three nodes alive."""
    expected = {f"node{i}": "alive" for i in (1, 2, 3)}
    return all(statuses(launch, index) == expected for index in viewers)


def test_members_see_a_frozen_node_suspect_then_alive_and_a_killed_node_dead(cluster: Launch):
    wait_for(
        lambda: all_alive(cluster),
        timeout=JOIN_DEADLINE_S,
        interval=0.25,
        what="every node to list three alive members",
    )

    node3 = node_groups(cluster, 3)
    for group in node3:
        signal_group(group, signal.SIGSTOP)
    frozen_at = time.monotonic()
    wait_for(
        lambda: node3_seen_as(cluster, {"suspect", "dead"}),
        timeout=DETECT_DEADLINE_S,
        interval=POLL_S,
        what="nodes 1 and 2 to see the frozen node3 suspect or dead",
    )
    suspected_after = time.monotonic() - frozen_at

    for group in node3:
        signal_group(group, signal.SIGCONT)
    resumed_at = time.monotonic()
    wait_for(
        lambda: all_alive(cluster),
        timeout=RECOVER_DEADLINE_S,
        interval=0.25,
        what="node3 to refute and be alive again everywhere",
    )
    alive_after = time.monotonic() - resumed_at

    # The launcher keeps nodes 1 and 2 running and restarts node3 only after RESTART_DELAY_S.
    for group in node3:
        signal_group(group, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(
        lambda: node3_seen_as(cluster, {"dead"}),
        timeout=DETECT_DEADLINE_S,
        interval=POLL_S,
        what="nodes 1 and 2 to see the killed node3 dead",
    )
    dead_after = time.monotonic() - killed_at
    survivors = [statuses(cluster, i) for i in (1, 2)]
    assert all(view["node1"] == view["node2"] == "alive" for view in survivors), survivors
    assert cluster.proc.poll() is None, cluster.output()
    assert "kvs: node3 died" in cluster.output()

    # An operator forgets the dead node3 on node1: node2 is told over the signed internal API.
    answer = httpx.delete(f"{cluster.node_url(1)}/api/v1/cluster/members/node3", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "node_id": "node3",
        "forgotten_by": ["node1", "node2"],
        "unreachable": [],
    }
    assert all(set(statuses(cluster, i)) == {"node1", "node2"} for i in (1, 2))

    stop_launcher(cluster.proc)  # while node3's restart is still pending
    assert cluster.proc.returncode == 0, cluster.output()
    assert "kvs: stopped" in cluster.output()
    print(f"\nnode3 frozen: suspect after {suspected_after:.1f} s", end="; ")
    print(f"resumed: alive after {alive_after:.1f} s; killed: dead after {dead_after:.1f} s")
