"""PostgreSQL restarted under a node (`pg_ctl restart -m fast`, then `-m immediate`) while
clients write and watch: during each restart the node answers with successes or JSON 503s, never
a 500; after it, writes work again without restarting the node, and the history checker finds no
acknowledged write lost, no resurrected delete and no watch fault.

The test starts a throwaway PostgreSQL of its own (initdb, pg_ctl) on a loopback port. Without
PostgreSQL's binaries it is skipped, except under CI=true, where that is a failure."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.deps import Postgres, Probe, pg_bin, postgres_running, role_pid
from tests.faults.history import check
from tests.faults.workload import (
    Workload,
    finals_read,
    joined_at,
    nodes_of,
    streams_caught_up,
)

from .helpers import Launch, health_ok, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    if pg_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's initdb was not found (apt-get install postgresql)")
        pytest.skip("PostgreSQL's initdb was not found")
    with postgres_running() as server:
        yield server


@pytest.fixture
def cluster(request, tmp_path: Path, postgres: Postgres) -> Iterator[Launch]:
    env = {"KVS_AUTH_ENABLED": "false", "KVS_THROTTLE_ANON": ""}
    args = ["--database-url", f"{postgres.url}/kvs_restart_{{node}}"]
    with kvs_up(tmp_path, nodes=1, env=env, args=args, start_deadline=180) as launched:
        with logs_on_failure(request, launched):
            yield launched


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restarted_postgres_gives_503s_then_the_node_goes_on(
    cluster: Launch, postgres: Postgres, mode: str
):
    url = cluster.node_url(1)
    wait_for(lambda: health_ok(url), timeout=60, what="a healthy node")
    nodes = nodes_of([url])
    servers = {role: role_pid(cluster.proc.pid, cluster.data / "node1", cluster.port, 1, role)
               for role in ("web", "worker")}  # fmt: skip
    work = Workload(nodes, None, clients_per_node=3, keys_per_client=5)
    probe = Probe(url)
    work.start()
    try:
        time.sleep(3)
        probe.start()
        postgres.ctl("-m", mode, "-w", "restart")
        restarted = time.monotonic()
        # Writes work again without restarting the node.
        wait_for(
            lambda: (
                httpx.put(f"{url}/api/v1/kv/after-{mode}", json=1, timeout=5).status_code == 201
            ),
            timeout=30,
            what="a write to succeed after the restart",
        )
        back_s = time.monotonic() - restarted
        time.sleep(3)
        probe.stop()
        work.stop_clients()
        finals = finals_read(nodes, None, work.history.keys())
        wait_for(
            lambda: streams_caught_up(work.history, finals),
            timeout=30,
            what="the watch to reach the node's final state",
        )
    finally:
        probe.stop()
        work.stop()
    report = check(work.history, finals, joined_at=joined_at(nodes, None))
    print(
        f"\npg_ctl restart -m {mode}: writes back {back_s:.1f} s after the restart returned; "
        f"probe: {probe.summary()}; {report.summary()}"
    )
    assert not probe.faults(), probe.faults()[:10]
    assert report.acknowledged > 30
    assert report.ok, report.summary()
    after = {role: role_pid(cluster.proc.pid, cluster.data / "node1", cluster.port, 1, role)
             for role in servers}  # fmt: skip
    assert after == servers, "the node was restarted"
