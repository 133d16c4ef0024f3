"""`kvs up` end to end: one real node serves the API, runs Celery beat, and stops on a signal."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from .helpers import STOP_DEADLINE_S, Launch, alive, health_ok, kvs_up, node_processes, wait_for

pytestmark = pytest.mark.integration

EXPIRY_DEADLINE_S = 20.0


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start `kvs up` with one node on a free port; on teardown kill whatever it left behind."""
    with kvs_up(tmp_path, nodes=1, env={"KVS_EXPIRY_INTERVAL": "0.5"}) as launched:
        yield launched


def _assert_serves_api(launch: Launch) -> None:
    auth = {"Authorization": f"Bearer {launch.token}"}
    with httpx.Client(base_url=launch.url, headers=auth, timeout=10.0) as client:
        assert client.put("/api/v1/kv/e2e/a", json={"n": 1}).status_code == 201
        got = client.get("/api/v1/kv/e2e/a")
        assert got.status_code == 200
        assert got.json()["value"] == {"n": 1}
        assert httpx.get(f"{launch.url}/api/v1/kv/e2e/a", timeout=10.0).status_code == 401
        assert client.put("/api/v1/kv/e2e/ttl", params={"ttl": 1}, json=1).status_code == 201

        def expired_by_worker() -> bool:
            # A read of an expired key is already 404 without Celery; only the expiry task
            # writes the tombstone that history shows.
            history = client.get("/api/v1/history/e2e/ttl")
            return history.status_code == 200 and history.json()["versions"][0]["deleted"]

        wait_for(
            expired_by_worker,
            timeout=EXPIRY_DEADLINE_S,
            interval=0.25,
            what="the Celery expiry task to tombstone e2e/ttl",
        )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_up_serves_the_node_and_stops_every_process_on_signal(
    launch: Launch, signum: signal.Signals
) -> None:
    assert health_ok(launch.url)
    assert launch.url in launch.output()
    assert launch.token in launch.output()
    _assert_serves_api(launch)

    descendants = psutil.Process(launch.proc.pid).children(recursive=True)
    assert descendants, "kvs up started no processes"
    launch.proc.send_signal(signum)

    assert launch.proc.wait(timeout=STOP_DEADLINE_S) == 0, launch.output()
    assert alive(descendants) == [], launch.output()
    assert node_processes(launch.data, launch.ports) == []
    assert not health_ok(launch.url)
