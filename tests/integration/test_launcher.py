"""`kvs up` end to end: one real node serves the API, runs Celery beat, and stops on a signal."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

pytestmark = pytest.mark.integration

KVS = Path(sys.executable).with_name("kvs")
START_DEADLINE_S = 90.0  # migrate + bootstrap + uvicorn + celery on a loaded 2-core machine
EXPIRY_DEADLINE_S = 20.0
STOP_DEADLINE_S = 20.0

T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Launch:
    """A running `kvs up --nodes 1` and everything needed to talk to it."""

    proc: subprocess.Popen
    data: Path
    port: int
    token: str
    lines: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "".join(self.lines)


def _collect(proc: subprocess.Popen, lines: list[str]) -> None:
    """Append the launcher's output lines to `lines` as they arrive."""
    for line in proc.stdout:
        lines.append(line)


def _health_ok(url: str) -> bool:
    """Whether the node at `url` answers /health with 200."""
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _node_processes(data: Path, port: int) -> list[psutil.Process]:
    """Live processes whose command line or environment points at this launch."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.cmdline()
            environ = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if (
            any(str(data) in arg or arg == str(port) for arg in cmdline)
            or environ.get("KVS_DATA_DIR", "").startswith(str(data))
        ) and proc.pid != os.getpid():
            found.append(proc)
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of `procs` still running (zombies are dead)."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start `kvs up` with one node on a free port; on teardown kill whatever it left behind."""
    assert KVS.exists(), f"{KVS} is missing: run `.venv/bin/pip install -e . --no-deps`"
    data, port, token = tmp_path / "cluster", free_port(), "kvs_" + secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(KVS_BOOTSTRAP_TOKEN=token, KVS_EXPIRY_INTERVAL="0.5")
    proc = subprocess.Popen(
        [str(KVS), "up", "--nodes", "1", "--base-port", str(port), "--data", str(data)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_collect, args=(proc, lines), daemon=True)
    reader.start()
    launched = Launch(proc, data, port, token, lines)
    try:
        wait_for(
            lambda: "cluster up" in launched.output() or proc.poll() is not None,
            timeout=START_DEADLINE_S,
            what="`kvs up` to print `cluster up`",
        )
        assert proc.poll() is None, f"kvs up exited {proc.returncode}:\n{launched.output()}"
        yield launched
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for leftover in _node_processes(data, port):
            leftover.kill()
        reader.join(timeout=5)


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
    assert _health_ok(launch.url)
    assert launch.url in launch.output()
    assert launch.token in launch.output()
    _assert_serves_api(launch)

    descendants = psutil.Process(launch.proc.pid).children(recursive=True)
    assert descendants, "kvs up started no processes"
    launch.proc.send_signal(signum)

    assert launch.proc.wait(timeout=STOP_DEADLINE_S) == 0, launch.output()
    assert _alive(descendants) == [], launch.output()
    assert _node_processes(launch.data, launch.port) == []
    assert not _health_ok(launch.url)
