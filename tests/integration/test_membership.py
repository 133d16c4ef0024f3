"""Gossip membership across three real nodes: join, a frozen node, its recovery, a killed node."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from .helpers import Launch, kvs_up, stop_launcher, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
JOIN_DEADLINE_S = 30.0
DETECT_DEADLINE_S = 10.0
RECOVER_DEADLINE_S = 30.0
POLL_S = 0.1


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Launch]:
    # Auth off: this test is about membership, and must not depend on how seeded nodes get
    # their root credential. The internal API is signed regardless.
    env = {"KVS_AUTH_ENABLED": "false"}
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        try:
            yield launched
        finally:
            for group in _node_groups(launched, 3, quiet=True):
                _signal_group(group, signal.SIGCONT)  # let a frozen node hear the stop signal


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


def _node_groups(launch: Launch, index: int, *, quiet: bool = False) -> set[int]:
    """Process groups of node `index`'s web server and Celery worker, among the launcher's
    descendants (found by the web port and the worker's `-n node{index}@` name)."""
    port, name = str(launch.port + index - 1), f"node{index}@"
    groups = set()
    try:
        descendants = psutil.Process(launch.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for proc in descendants:
        try:
            cmdline = proc.cmdline()
            web = "uvicorn" in cmdline and port in cmdline
            if web or any(arg.startswith(name) for arg in cmdline):
                groups.add(os.getpgid(proc.pid))
        except (psutil.Error, ProcessLookupError):
            continue
    groups -= {os.getpgrp(), launch.proc.pid}  # never signal ourselves or the launcher's group
    if not quiet:
        assert len(groups) == 2, f"expected node{index}'s web and worker groups, found {groups}"
    return groups


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def test_members_see_a_frozen_node_suspect_then_alive_and_a_killed_node_dead(cluster: Launch):
    wait_for(
        lambda: all_alive(cluster),
        timeout=JOIN_DEADLINE_S,
        interval=0.25,
        what="every node to list three alive members",
    )

    node3 = _node_groups(cluster, 3)
    for group in node3:
        _signal_group(group, signal.SIGSTOP)
    frozen_at = time.monotonic()
    wait_for(
        lambda: node3_seen_as(cluster, {"suspect", "dead"}),
        timeout=DETECT_DEADLINE_S,
        interval=POLL_S,
        what="nodes 1 and 2 to see the frozen node3 suspect or dead",
    )
    suspected_after = time.monotonic() - frozen_at

    for group in node3:
        _signal_group(group, signal.SIGCONT)
    resumed_at = time.monotonic()
    wait_for(
        lambda: all_alive(cluster),
        timeout=RECOVER_DEADLINE_S,
        interval=0.25,
        what="node3 to refute and be alive again everywhere",
    )
    alive_after = time.monotonic() - resumed_at

    # The launcher stops the whole cluster when one of its children dies: freeze it while
    # node3 is dead, so that nodes 1 and 2 keep running and can declare node3 dead.
    os.kill(cluster.proc.pid, signal.SIGSTOP)
    try:
        for group in node3:
            _signal_group(group, signal.SIGKILL)
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
    finally:
        # SIGTERM is queued before SIGCONT, so on waking the launcher sees the stop request
        # before node3's death and stops the rest cleanly.
        stop_launcher(cluster.proc)
    assert cluster.proc.returncode == 0, cluster.output()
    assert "kvs: stopped" in cluster.output()
    print(f"\nnode3 frozen: suspect after {suspected_after:.1f} s", end="; ")
    print(f"resumed: alive after {alive_after:.1f} s; killed: dead after {dead_after:.1f} s")
