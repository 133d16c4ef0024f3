"""A short fault scenario: concurrent clients and watches on three nodes while one node's web
server is killed (-9, the launcher restarts it) and another's is frozen (SIGSTOP, then SIGCONT);
after healing, the Merkle roots converge and the history checker finds no lost write, no
resurrected delete and no watch fault (tests/faults/history.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.faults.history import check
from tests.faults.workload import (
    Workload,
    finals_read,
    joined_at,
    merkle_converged,
    nodes_of,
    streams_caught_up,
)

from .helpers import Launch, fault_cluster, health_ok, logs_on_failure, signal_group, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

START_DEADLINE_S = 180.0
HEAL_DEADLINE_S = 90.0


def web_group(launch: Launch, index: int) -> int:
    """The process group of node `index`'s web server."""
    port = str(launch.port + index - 1)
    for proc in psutil.Process(launch.proc.pid).children(recursive=True):
        try:
            if "serve" in proc.cmdline() and port in proc.cmdline():
                return os.getpgid(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    raise AssertionError(f"no web server for node{index}")


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    with fault_cluster(tmp_path, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def test_no_write_is_lost_across_a_killed_and_a_frozen_web_server(cluster: Launch):
    urls = [cluster.node_url(i) for i in (1, 2, 3)]
    wait_for(lambda: all(health_ok(u) for u in urls), timeout=60, what="three healthy nodes")
    nodes = nodes_of(urls)
    work = Workload(nodes, None, clients_per_node=2, keys_per_client=5)
    work.start()
    try:
        time.sleep(4)  # writes before any fault
        signal_group(web_group(cluster, 2), signal.SIGKILL)
        wait_for(
            lambda: "kvs: node2 restarted" in cluster.output() and health_ok(urls[1]),
            timeout=HEAL_DEADLINE_S,
            what="the launcher to restart node2",
        )
        time.sleep(3)
        group = web_group(cluster, 3)
        cluster.frozen.append(group)
        signal_group(group, signal.SIGSTOP)
        time.sleep(4)
        signal_group(group, signal.SIGCONT)
        time.sleep(3)
        work.stop_clients()
        healed = time.monotonic()
        took, converged = merkle_converged(nodes, None, timeout=HEAL_DEADLINE_S)
        assert converged, f"Merkle roots still differ {took:.1f} s after healing"
        finals = finals_read(nodes, None, work.history.keys())
        wait_for(
            lambda: streams_caught_up(work.history, finals),
            timeout=30,
            what="every watch to reach its node's final state",
        )
    finally:
        work.stop()
    report = check(work.history, finals, joined_at=joined_at(nodes, None))
    print(
        f"\nMerkle roots equal {took:.1f} s after healing ({time.monotonic() - healed:.1f} s "
        f"with the final reads); {report.summary()}"
    )
    assert report.acknowledged > 50
    assert report.ok, report.summary()
