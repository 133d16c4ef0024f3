"""Redis lost and restarted, and Redis frozen, under one node of three while clients write and
watch on every node. Redis is the node's Celery broker, channel layer and cache; SQLite stays the
source of truth. During the outage the node answers every request with a success or a JSON 503,
never a 500; once Redis is back (the launcher restarts it on the same port with the same
configuration, without restarting the node's web server), replication, gossip and anti-entropy
resume, the Merkle roots meet and the history checker finds no lost write, no resurrected delete
and no watch fault."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.faults.deps import pid_of, scenario

from .helpers import Launch, fault_cluster, logs_on_failure, signal_group, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

START_DEADLINE_S = 180.0
OUTAGE_S = 5.0  # the launcher's restart delay: how long a killed Redis stays away


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    tmp = tmp_path_factory.mktemp("redis-loss")
    args = ["--restart-delay", str(OUTAGE_S)]
    with fault_cluster(tmp, args=args, start_deadline=START_DEADLINE_S) as launched:
        yield launched


@pytest.fixture
def cluster(request: pytest.FixtureRequest, module_cluster: Launch) -> Iterator[Launch]:
    with logs_on_failure(request, module_cluster):
        yield module_cluster


def test_a_killed_redis_is_restarted_alone_and_nothing_is_lost(cluster: Launch):
    def fault() -> None:
        restarts = cluster.output().count("kvs: node2 restarted: its Redis alone")
        signal_group(pid_of(cluster, 2, "redis"), signal.SIGKILL)
        wait_for(
            lambda: cluster.output().count("kvs: node2 restarted: its Redis alone") > restarts,
            timeout=OUTAGE_S + 60,
            what="the launcher to restart node2's Redis",
        )

    # The worker may be replaced: Celery's worker can exit when its broker vanishes while it holds
    # unacknowledged tasks (kombu fails while restoring them on reconnect), and the launcher then
    # starts a new worker alone. The web server stays.
    scenario(cluster, 2, fault, name="redis-kill", keep=("web",))


def test_a_frozen_redis_gives_503s_and_the_node_resumes_when_it_thaws(cluster: Launch):
    def fault() -> None:
        pid = pid_of(cluster, 3, "redis")
        cluster.frozen.append(pid)
        signal_group(pid, signal.SIGSTOP)
        time.sleep(8)
        signal_group(pid, signal.SIGCONT)
        cluster.frozen.remove(pid)

    scenario(cluster, 3, fault, name="redis-stop")
