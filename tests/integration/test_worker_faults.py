"""The Celery worker of one node of three killed (-9) and, separately, frozen (SIGSTOP) while
clients write and watch on every node: the node's web server keeps acknowledging writes (the
launcher starts a new worker alone after a kill, the web server stays up), replication resumes
once the worker is back, the Merkle roots meet and the history checker finds no lost write, no
resurrected delete and no watch fault."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.faults.deps import pid_of, scenario

from .helpers import Launch, fault_cluster, logs_on_failure, signal_group, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

START_DEADLINE_S = 180.0


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    tmp = tmp_path_factory.mktemp("worker-faults")
    args = ["--restart-delay", "3"]
    with fault_cluster(tmp, args=args, start_deadline=START_DEADLINE_S) as launched:
        yield launched


@pytest.fixture
def cluster(request: pytest.FixtureRequest, module_cluster: Launch) -> Iterator[Launch]:
    with logs_on_failure(request, module_cluster):
        yield module_cluster


def test_a_killed_worker_is_replaced_and_its_web_server_keeps_taking_writes(cluster: Launch):
    def fault() -> None:
        restarts = cluster.output().count("kvs: node2 restarted: its worker alone")
        old = pid_of(cluster, 2, "worker")
        signal_group(old, signal.SIGKILL)
        wait_for(
            lambda: cluster.output().count("kvs: node2 restarted: its worker alone") > restarts,
            timeout=60,
            what="the launcher to start a new worker for node2",
        )
        assert pid_of(cluster, 2, "worker") != old

    scenario(cluster, 2, fault, name="worker-kill", keep=("web",))


def test_a_frozen_worker_holds_back_replication_until_it_thaws(cluster: Launch):
    def fault() -> None:
        pid = pid_of(cluster, 3, "worker")
        cluster.frozen.append(pid)
        signal_group(pid, signal.SIGSTOP)
        time.sleep(8)
        signal_group(pid, signal.SIGCONT)
        cluster.frozen.remove(pid)

    scenario(cluster, 3, fault, name="worker-stop")
