"""Shared by the integration tests: start `kvs up`, wait with deadlines, find, signal and stop
processes, show node logs when a test fails."""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

KVS = Path(sys.executable).with_name("kvs")
START_DEADLINE_S = 90.0  # migrate + bootstrap + web server + celery on a loaded 2-core machine
STOP_DEADLINE_S = 20.0
LOG_TAIL_LINES = 40

T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_ports() -> range:
    """The kernel's range for outgoing connections and `bind(0)` (Linux's default if unknown)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free right now.

    They are picked outside the kernel's ephemeral range when there is room: every outgoing
    connection (HTTP and Redis clients, node-to-node requests) and every `bind(0)` (each node's
    embedded Redis) takes a port from that range, and on a busy machine one of them can take a
    web port between this check and the moment the launcher's web server binds it.
    """
    ephemeral = _ephemeral_ports()
    for low, high in ((20000, ephemeral.start), (ephemeral.stop, 65536)):
        if high - low < 1000:
            continue
        for _ in range(100):
            base = random.randrange(low, high - count)
            if all(_port_free(base + i) for i in range(count)):
                return base
    while True:  # no room outside the ephemeral range
        base = free_port()
        if base + count < 65536 and all(_port_free(base + i) for i in range(count)):
            return base


def wait_for(
    check: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    explain: Callable[[], object] | None = None,
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds (with what
    `explain()` says about the last state, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"; last seen: {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class Launch:
    """A running `kvs up` and everything needed to talk to it."""

    proc: subprocess.Popen
    data: Path
    port: int
    token: str
    lines: list[str]
    nodes: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port + i for i in range(self.nodes)]

    def node_url(self, index: int) -> str:
        """The URL of node `index` (1-based)."""
        return f"http://127.0.0.1:{self.port + index - 1}"

    def client(self, index: int = 1, token: str | None = None, *, timeout: float = 30.0):
        """An httpx client of node `index` sending `token` (default: the root token)."""
        return httpx.Client(
            base_url=self.node_url(index),
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=timeout,  # one request; generous, the machine may be loaded
            trust_env=False,
        )

    def output(self) -> str:
        return "".join(self.lines)

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        """The tail of the launcher's output and of every node's web, worker and Redis log."""
        parts = [f"--- kvs up output (last {lines} lines)\n{_tail(self.output(), lines)}"]
        for log in sorted(self.data.glob("node*/*.log")):
            try:
                text = log.read_text(errors="replace")
            except OSError as error:
                text = f"({error})"
            parts.append(f"--- {log} (last {lines} lines)\n{_tail(text, lines)}")
        return "\n".join(parts)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def show_logs(request: pytest.FixtureRequest, launch: Launch) -> None:
    """Print `launch.logs()` straight to the terminal, past pytest's output capture (which would
    swallow output made after the failing test's report, e.g. in a fixture's teardown)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    text = f"\n===== node logs after {request.node.nodeid} failed =====\n{launch.logs()}\n"
    if capture is None:
        print(text, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        print(text, file=sys.stderr, flush=True)


@contextmanager
def logs_on_failure(request: pytest.FixtureRequest, launch: Launch) -> Iterator[None]:
    """Around one test (in a fixture): show the node logs if the test failed."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        show_logs(request, launch)


def _collect(proc: subprocess.Popen, lines: list[str]) -> None:
    """Append the launcher's output lines to `lines` as they arrive."""
    for line in proc.stdout:
        lines.append(line)


def health_ok(url: str) -> bool:
    """Whether the node at `url` answers /health with 200."""
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def node_groups(launch: Launch, index: int, *, quiet: bool = False) -> set[int]:
    """Process groups of node `index`'s web server and Celery worker, among the launcher's
    descendants (found by the web port and the worker's `-n node{index}@` name). Unless `quiet`,
    assert that both are there."""
    port, name = str(launch.port + index - 1), f"node{index}@"
    groups = set()
    try:
        descendants = psutil.Process(launch.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for proc in descendants:
        try:
            cmdline = proc.cmdline()
            web = "serve" in cmdline and port in cmdline
            if web or any(arg.startswith(name) for arg in cmdline):
                groups.add(os.getpgid(proc.pid))
        except (psutil.Error, ProcessLookupError):
            continue
    groups -= {os.getpgrp(), launch.proc.pid}  # never signal ourselves or the launcher's group
    if not quiet:
        assert len(groups) == 2, f"expected node{index}'s web and worker groups, found {groups}"
    return groups


def signal_group(group: int, signum: int) -> None:
    """Send `signum` to a process group, if it still exists."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def node_processes(data: Path, ports: list[int]) -> list[psutil.Process]:
    """Live processes whose command line or environment points at this launch."""
    found = []
    port_args = {str(port) for port in ports}
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.cmdline()
            environ = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if (
            any(str(data) in arg or arg in port_args for arg in cmdline)
            or environ.get("KVS_DATA_DIR", "").startswith(str(data))
        ) and proc.pid != os.getpid():
            found.append(proc)
    return found


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of `procs` still running (zombies are dead)."""
    running = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
        except psutil.NoSuchProcess:
            pass
    return running


@contextmanager
def kvs_up(
    tmp_path: Path,
    *,
    nodes: int = 1,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    start_deadline: float = START_DEADLINE_S,
) -> Iterator[Launch]:
    """Run `kvs up --nodes N [args]` on free ports until the block ends; then kill whatever is
    left. With DATABASE_URL naming a PostgreSQL server, the nodes keep their data there."""
    assert KVS.exists(), f"{KVS} is missing: run `.venv/bin/pip install -e . --no-deps`"
    data, port, token = tmp_path / "cluster", free_ports(nodes), "kvs_" + secrets.token_urlsafe(32)
    child_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    child_env.update({"KVS_BOOTSTRAP_TOKEN": token, **(env or {})})
    argv = [str(KVS), "up", "--nodes", str(nodes), "--base-port", str(port), "--data", str(data)]
    argv += args
    server = os.environ.get("DATABASE_URL", "")
    if server.startswith(("postgres://", "postgresql://")) and "--database-url" not in args:
        # Under scripts/with-postgres: each node gets a database of its own on that server.
        argv += [
            "--database-url",
            f"{server.rsplit('/', 1)[0]}/kvs_{secrets.token_hex(4)}_{{node}}",
        ]
    proc = subprocess.Popen(
        argv,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_collect, args=(proc, lines), daemon=True)
    reader.start()
    launched = Launch(proc, data, port, token, lines, nodes)
    try:
        wait_for(
            lambda: "cluster up" in launched.output() or proc.poll() is not None,
            timeout=start_deadline,
            what="`kvs up` to print `cluster up`",
        )
        assert proc.poll() is None, f"kvs up exited {proc.returncode}:\n{launched.output()}"
        yield launched
    finally:
        stop_launcher(proc)
        for leftover in node_processes(data, launched.ports):
            leftover.kill()
        reader.join(timeout=5)


# Fault scenarios are about data, not credentials or rate limits (anonymous requests are throttled).
DATA_ONLY_ENV = {"KVS_AUTH_ENABLED": "false", "KVS_THROTTLE_ANON": ""}


@contextmanager
def fault_cluster(
    tmp_path: Path, *, args: Sequence[str] = (), start_deadline: float = START_DEADLINE_S
) -> Iterator[Launch]:
    """Three nodes for a fault scenario (DATA_ONLY_ENV). A test adds each process group it
    SIGSTOPs to `launched.frozen`; they are all continued when the block ends, whatever
    happened, so that the nodes can be stopped."""
    with kvs_up(
        tmp_path, nodes=3, env=DATA_ONLY_ENV, args=args, start_deadline=start_deadline
    ) as launched:
        launched.frozen = []
        try:
            yield launched
        finally:
            for group in launched.frozen:
                signal_group(group, signal.SIGCONT)


def stop_launcher(proc: subprocess.Popen) -> None:
    """SIGTERM the launcher (resuming it if it was stopped); SIGKILL it if it will not exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    try:
        proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
