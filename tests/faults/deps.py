"""What the fault scenarios of a node's dependencies (its Redis, its Celery worker, its database
server) need beside the workload: a probe that records every answer one node gives while the
dependency is away, the process to signal, and the node-to-node bytes of a healing (P2).

The probe's rule: every answer is a success or a JSON 503 (`code` `unavailable`); never a 500,
never an HTML or plain-text error page. A request without an answer (a timeout) is noted apart.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

PROBE_TIMEOUT_S = 8.0
HEAL_DEADLINE_S = 90.0


@dataclass
class Answer:
    what: str
    status: int | None  # None: no answer (a timeout, a refused connection)
    content_type: str = ""
    code: str | None = None
    detail: str = ""


@dataclass
class Probe:
    """PUT, GET and a short SSE watch against one node, in a loop, until stopped."""

    url: str
    token: str | None = None
    prefix: str = "probe/"
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=PROBE_TIMEOUT_S * 3)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        n = 0
        with httpx.Client(base_url=self.url, headers=headers, timeout=PROBE_TIMEOUT_S) as api:
            while not self.stopping.is_set():
                n += 1
                key = f"{self.prefix}{n % 7}"
                self._ask("PUT", api.put, f"/api/v1/kv/{key}", json={"n": n})
                self._ask("GET", api.get, f"/api/v1/kv/{key}")
                self._ask("watch", self._watch, api)
                self.stopping.wait(0.1)

    def _watch(self, api: httpx.Client) -> httpx.Response:
        """The head of an SSE watch (status, and the first line of a 200)."""
        request = api.build_request(
            "GET",
            "/api/v1/watch",
            params={"prefix": self.prefix},
            headers={"Accept": "text/event-stream"},
        )
        answer = api.send(request, stream=True)
        try:
            if answer.status_code != 200:
                answer.read()
        finally:
            answer.close()
        return answer

    def _ask(self, what: str, call, *args, **kwargs) -> None:
        try:
            answer = call(*args, **kwargs)
        except httpx.HTTPError as error:
            self.answers.append(Answer(what, None, detail=type(error).__name__))
            return
        kind = answer.headers.get("content-type", "")
        code, detail = None, ""
        if answer.status_code >= 400 and answer.is_stream_consumed:
            try:
                body = answer.json()
                code, detail = body.get("code"), body.get("detail", "")
            except ValueError:
                detail = answer.text[:200]
        self.answers.append(Answer(what, answer.status_code, kind, code, detail))

    def faults(self) -> list[str]:
        """Answers that break the rule: anything but 2xx, a 404 of a key not yet written, or a
        JSON 503 `unavailable`."""
        bad = []
        for a in self.answers:
            if a.status is None or a.status < 400:
                continue
            if a.status == 404 and a.what == "GET" and a.code == "not_found":
                continue
            if a.status == 503 and a.code == "unavailable" and "json" in a.content_type:
                continue
            bad.append(f"{a.what}: {a.status} {a.content_type} {a.code} {a.detail[:120]}")
        return bad

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for a in self.answers:
            label = f"{a.what} {a.status if a.status is not None else 'no answer'}"
            counts[label] = counts.get(label, 0) + 1
        return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def role_pid(launcher_pid: int, node_dir: Path, port: int, index: int, role: str) -> int:
    """The pid of node `index`'s web server, Celery worker or Redis (each leads its own process
    group) among the launcher's descendants."""
    for proc in psutil.Process(launcher_pid).children(recursive=True):
        try:
            cmdline = proc.cmdline()
            if proc.pid != os.getpgid(proc.pid):
                continue
            if role == "web" and "serve" in cmdline and str(port) in cmdline:
                return proc.pid
            if role == "worker" and any(arg.startswith(f"node{index}@") for arg in cmdline):
                return proc.pid
            # redis-server renames its process and runs in its `dir`, the node's directory
            redis = role == "redis" and "redis" in (cmdline[:1] or [""])[0]
            if redis and proc.cwd() == str(node_dir):
                return proc.pid
        except (psutil.Error, ProcessLookupError):
            continue
    raise AssertionError(f"no {role} process for node{index}")


_BYTES = re.compile(r"^kvs_cluster_bytes_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


def cluster_bytes(urls: list[str], token: str | None = None) -> int:
    """Node-to-node bytes so far, summed over the nodes: every body each node sent to a peer and
    received back as a client (`kvs_cluster_bytes_total`, on the wire), gossip included."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    total = 0.0
    for url in urls:
        text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
        for labels, value in _BYTES.findall(text):
            if 'form="wire"' in labels:
                total += float(value)
    return int(total)


def heal_measure(urls: list[str], nodes, token: str | None, *, timeout: float):
    """Seconds until every Merkle root is equal, whether they were, and the node-to-node bytes
    meanwhile."""
    from .workload import merkle_converged

    before = cluster_bytes(urls, token)
    took, converged = merkle_converged(nodes, token, timeout=timeout)
    return took, converged, cluster_bytes(urls, token) - before


def wait_until(check, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


# --- One scenario ---------------------------------------------------------------------------------


def pid_of(launch, index: int, role: str) -> int:
    """The pid of node `index`'s `role` process in a `kvs_up` launch."""
    return role_pid(
        launch.proc.pid, launch.data / f"node{index}", launch.port + index - 1, index, role
    )


def member_status(url: str, node_id: str) -> str | None:
    try:
        members = httpx.get(f"{url}/api/v1/cluster/members", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    return {m["node_id"]: m["status"] for m in members}.get(node_id)


def scenario(launch, index: int, fault, *, name: str, keep=("web", "worker")) -> None:
    """Clients on every node and a probe on node `index`; `fault()` (returns once what it broke
    is back); then healing, the probe's answers (a success or a JSON 503 each), the checker, the
    processes in `keep` the same as before (the node was not restarted), the node alive to its
    peers, and a write on it replicated to every node."""
    from tests.integration.helpers import health_ok, wait_for

    from .history import check
    from .workload import Workload, finals_read, joined_at, nodes_of, streams_caught_up

    urls = [launch.node_url(i) for i in (1, 2, 3)]
    wait_for(lambda: all(health_ok(u) for u in urls), timeout=60, what="three healthy nodes")
    nodes = nodes_of(urls)
    servers = {role: pid_of(launch, index, role) for role in keep}
    work = Workload(nodes, None, prefix=f"{name}/", clients_per_node=2, keys_per_client=5)
    probe = Probe(urls[index - 1], prefix=f"{name}-probe/")
    work.start()
    try:
        time.sleep(3)  # writes before the fault
        probe.start()
        fault()
        time.sleep(3)  # writes after Redis is back
        probe.stop()
        work.stop_clients()
        took, converged, healing_bytes = heal_measure(urls, nodes, None, timeout=HEAL_DEADLINE_S)
        assert converged, f"Merkle roots still differ {took:.1f} s after healing"
        finals = finals_read(nodes, None, work.history.keys())
        wait_for(
            lambda: streams_caught_up(work.history, finals),
            timeout=30,
            what="every watch to reach its node's final state",
        )
    finally:
        probe.stop()
        work.stop()
    report = check(work.history, finals, joined_at=joined_at(nodes, None))
    print(
        f"\n{name}: Merkle roots equal {took:.1f} s after the clients stopped, "
        f"{healing_bytes} node-to-node bytes meanwhile; probe: {probe.summary()}; "
        f"{report.summary()}"
    )
    assert not probe.faults(), probe.faults()[:10]
    assert report.acknowledged > 30
    assert report.ok, report.summary()
    # Not restarted: the same web server and worker throughout, and the node alive to its peers.
    assert {role: pid_of(launch, index, role) for role in servers} == servers
    node_id = nodes[index - 1].node_id
    wait_for(
        lambda: all(member_status(u, node_id) == "alive" for u in urls),
        timeout=30,
        what=f"every node to list {node_id} alive",
    )
    # Replication from the node resumed: its worker pushes a write there (through the broker)
    # to the others, which have it.
    pushed = metric_sum(urls[index - 1], "kvs_replication_push_batches_total")
    httpx.put(f"{urls[index - 1]}/api/v1/kv/{name}-after", json=1, timeout=10).raise_for_status()
    for url in urls:
        wait_for(
            lambda url=url: (
                httpx.get(f"{url}/api/v1/kv/{name}-after", timeout=5).status_code == 200
            ),
            timeout=30,
            what=f"{name}-after on {url}",
        )
    wait_for(
        lambda: metric_sum(urls[index - 1], "kvs_replication_push_batches_total") > pushed,
        timeout=30,
        what=f"node{index}'s worker to push again",
    )


def metric_sum(url: str, name: str, token: str | None = None) -> float:
    """The sum of a counter's samples in a node's /metrics."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


# --- A throwaway PostgreSQL ----------------------------------------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL server of the scenario's own, on a loopback port (user postgres, trust)."""

    bin: Path
    dir: Path
    port: int

    def ctl(self, *args: str) -> None:
        """`pg_ctl -D <data> args...` (`"-m", "fast", "-w", "restart"`)."""
        command = [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), *args]
        as_owner(command, check=True, stdout=subprocess.DEVNULL, timeout=120)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"


def as_owner(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, **kwargs)


def pg_bin() -> Path | None:
    """The directory of PostgreSQL's initdb and pg_ctl (the newest under /usr/lib/postgresql)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    return versions[-1].parent if versions else None


@contextmanager
def postgres_running() -> Iterator[Postgres]:
    """initdb and start a PostgreSQL in a temporary directory; stop and remove it afterwards."""
    binaries = pg_bin()
    assert binaries is not None, "PostgreSQL's initdb was not found (apt-get install postgresql)"
    where = Path(tempfile.mkdtemp(prefix="kvs-pg-"))
    if os.geteuid() == 0:
        shutil.chown(where, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Postgres(binaries, where, port)
    initdb = [str(binaries / "initdb"), "-D", str(where / "data"), "-U", "postgres", "-A"]
    initdb += ["trust", "-E", "UTF8", "--locale=C.UTF-8"]
    try:
        as_owner(initdb, check=True, stdout=subprocess.DEVNULL, timeout=120)
        options = f"-c listen_addresses=127.0.0.1 -c port={port} "
        options += f"-c unix_socket_directories={where} -c fsync=off -c max_connections=100"
        server.ctl("-l", str(where / "server.log"), "-w", "-o", options, "start")
        yield server
    finally:
        as_owner(
            [str(binaries / "pg_ctl"), "-D", str(where / "data"), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(where, ignore_errors=True)
