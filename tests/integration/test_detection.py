"""P6 on three nodes: a whole node (web server and worker) frozen longer than the suspicion
timeout is suspected, then declared dead, by both others within a bound, and is alive again soon
after it resumes; stalls shorter than the timeout and CPU load cause no false suspicion
(tests/faults/detection.py measures both from the nodes' member tables)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.faults.detection import MemberLog, detection_s, false_suspicions

from .helpers import (
    Launch,
    fault_cluster,
    health_ok,
    logs_on_failure,
    node_groups,
    signal_group,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

START_DEADLINE_S = 180.0
SHORT_STALL_S = 1.0  # well under KVS_SUSPECT_AFTER (2.5 s) plus a gossip interval
LONG_STALL_S = 8.0  # past KVS_DEAD_AFTER (5 s)
LOAD_S = 8.0
# From the stall to both peers listing the node: the timeout, a round, a poll, and a loaded
# machine's delays.
DETECTION_BOUND_S = 10.0


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launch]:
    with fault_cluster(tmp_path, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def freeze(cluster: Launch, index: int, seconds: float) -> None:
    """SIGSTOP node `index`'s web server and worker for `seconds`, then SIGCONT them."""
    groups = node_groups(cluster, index)
    cluster.frozen.extend(groups)
    for group in groups:
        signal_group(group, signal.SIGSTOP)
    time.sleep(seconds)
    for group in groups:
        signal_group(group, signal.SIGCONT)


def all_alive(log: MemberLog, since: float) -> bool:
    """Whether every observer's latest sample after `since` lists every member alive."""
    latest = {}
    for sample in log.samples:
        if sample.at >= since:
            latest[(sample.observer, sample.member)] = sample.status
    return len(latest) == 6 and set(latest.values()) == {"alive"}


def test_a_frozen_node_is_detected_and_short_stalls_or_load_are_not(cluster: Launch):
    urls = {f"node{i}": cluster.node_url(i) for i in (1, 2, 3)}
    wait_for(lambda: all(health_ok(u) for u in urls.values()), timeout=60, what="three nodes")
    log = MemberLog(urls).start()
    try:
        started = time.monotonic()
        wait_for(lambda: all_alive(log, started), timeout=60, what="every member alive")

        # Short stalls of node3, then both cores busy: nobody may be suspected.
        quiet_from = time.monotonic()
        for _ in range(3):
            freeze(cluster, 3, SHORT_STALL_S)
            time.sleep(2.0)
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
        try:
            time.sleep(LOAD_S)
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
        time.sleep(2.0)  # a suspicion begun under load shows up here
        quiet = [s for s in log.samples if s.at >= quiet_from]
        false = false_suspicions(quiet)

        # A long freeze of node3: detected by both others, then dead, then alive again.
        stopped = time.monotonic()
        freeze(cluster, 3, LONG_STALL_S)
        resumed = time.monotonic()
        wait_for(lambda: all_alive(log, resumed), timeout=60, what="node3 alive again")
        back = time.monotonic() - resumed
    finally:
        log.stop()
    peers = ["node1", "node2"]
    suspect = detection_s(log.samples, member="node3", since=stopped, observers=peers)
    dead = detection_s(
        log.samples, member="node3", since=stopped, observers=peers, status=("dead",)
    )
    print(
        f"\nP6: suspect after {_s(suspect)} s, dead after {_s(dead)} s (KVS_SUSPECT_AFTER "
        f"{settings.KVS_SUSPECT_AFTER} s, KVS_DEAD_AFTER {settings.KVS_DEAD_AFTER} s), alive "
        f"{back:.1f} s after resuming; {len(false)} false suspicions in 3 stalls of "
        f"{SHORT_STALL_S} s and {LOAD_S} s of 4 busy loops"
    )
    assert suspect is not None and suspect <= DETECTION_BOUND_S, suspect
    assert dead is not None and dead <= LONG_STALL_S + 1, dead
    assert false == [], false


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}"
