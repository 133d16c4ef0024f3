"""The fault matrix: one three-node `kvs up` cluster, and for each fault a phase of concurrent
clients and watches on every node (tests/faults/workload.py), the fault, healing, and the history
checker (tests/faults/history.py) on what the clients were told.

    .venv/bin/python bench/faults.py                       # every fault
    .venv/bin/python bench/faults.py --faults web-kill web-stop --hold 10 --json out.json

Clock skew, a full disk and CPU stalls, each kind on a cluster of its own (MORE_FAULTS below):
clock-ahead (node2 +1 h), clock-behind (node3 -1 h), clock-jump-back (node3 back another hour
while it runs), disk-full (node2's data directory, a tmpfs, filled for --hold s; needs root),
node-stop (node3's web server and worker frozen for --hold s), stall-short (node3 frozen three
times for 1 s), cpu-load (four busy loops for --hold s); false suspicions = P6.

Faults, on node2 or node3 (never node1, which the detection time is read from):
  web-kill     kill -9 of node2's web server (the launcher restarts the node's web and worker)
  web-stop     SIGSTOP of node3's web server for --hold seconds, then SIGCONT
  worker-kill  kill -9 of node2's Celery worker (the launcher starts a new one; web stays up)
  worker-stop  SIGSTOP of node3's Celery worker for --hold seconds (no gossip, push or
               anti-entropy from it; its web server keeps taking writes)
  redis-kill   kill -9 of node2's Redis (broker, channel layer and cache); the launcher starts it
               again on the same port after its restart delay, the node's web server stays up
  redis-stop   SIGSTOP of node3's Redis for --hold seconds, then SIGCONT
PostgreSQL restarts, each on a one-node cluster of its own on a throwaway PostgreSQL
(tests/faults/deps.py; needs PostgreSQL's binaries; not in the default run):
  pg-restart-fast, pg-restart-immediate
               `pg_ctl restart -m fast|immediate` under the node; convergence = seconds from
               the end of the restart until a write is acknowledged again
Network faults, on a second cluster whose nodes run on their own hosts (network namespaces,
tests/faults/netns.py; needs root, and nftables for all but `isolate`), each held --hold seconds:
  isolate       node3's link down (peers and clients lose it)
  cut-pair      node1 | node2, both ways; both still reach node3
  cut-majority  node1 and node2 | node3, both ways; clients write on both sides
  one-way-out   node1 can open no connection to node3 (node3's to node1 work)
  one-way-in    node3 can open no connection to node1 (node1's to node3 work)
  loss-20       20 % of the packets between node3 and its peers dropped, each way
  throttle      node3's link limited to 256 kbit/s each way (tc tbf)
  delay         100 ms ± 20 ms on node3's packets (tc netem; "netem unavailable" without it)
Per phase: clients for --before seconds, the fault, the node back (health 200; for a network
fault: healed, and node1 lists every node alive), clients for --after seconds, clients stopped;
convergence = seconds from then until every node reports the same Merkle root; bytes =
node-to-node bytes meanwhile, summed over the nodes' `kvs_cluster_bytes_total` (on the wire,
gossip included; process faults); detection = seconds from the fault until node1 lists the node
suspect or dead (— when it never did). For process faults, an answer of the faulted node other
than a success or a JSON 503 is a problem (tests/faults/deps.py's probe).
Exit status: 0 no violation, 1 the checker found one or roots never met.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.faults.clocks import faketime_env, offset_set  # noqa: E402
from tests.faults.deps import Probe, heal_measure, postgres_running  # noqa: E402
from tests.faults.detection import MemberLog, detection_s, false_suspicions  # noqa: E402
from tests.faults.disk import fill, tmpfs  # noqa: E402
from tests.faults.history import check  # noqa: E402
from tests.faults.netns import (  # noqa: E402
    Host,
    NetnsCluster,
    NetnsUnavailable,
    netns_cluster,
    netns_missing,
)
from tests.faults.workload import (  # noqa: E402
    Workload,
    finals_read,
    joined_at,
    merkle_converged,
    nodes_of,
    streams_caught_up,
)
from tests.integration.helpers import (  # noqa: E402
    Launch,
    health_ok,
    kvs_up,
    node_groups,
    signal_group,
    wait_for,
)

FAULTS = {
    "web-kill": (2, "web", signal.SIGKILL),
    "web-stop": (3, "web", signal.SIGSTOP),
    "worker-kill": (2, "worker", signal.SIGKILL),
    "worker-stop": (3, "worker", signal.SIGSTOP),
    "redis-kill": (2, "redis", signal.SIGKILL),
    "redis-stop": (3, "redis", signal.SIGSTOP),
}


@dataclass
class Row:
    fault: str
    operations: int
    acknowledged: int
    unknown: int
    lost: int
    resurrected: int
    watch_faults: int
    convergence_s: float | None
    detection_s: float | None
    problems: list[str]
    unavailable: str | None = None  # why the fault could not be made here
    false_suspicions: int | None = None  # P6: suspicions of nodes that were not down
    healing_bytes: int | None = None  # node-to-node bytes from the clients' stop to convergence


def finals_settled(work: Workload, nodes) -> dict:
    """Each key's final state, read once the clients stopped, after giving every watch stream up
    to 30 s to catch up with it."""
    finals = finals_read(nodes, None, work.history.keys())
    deadline = time.monotonic() + 30
    while not streams_caught_up(work.history, finals) and time.monotonic() < deadline:
        time.sleep(0.25)
    return finals


def checked_row(
    name: str, work: Workload, nodes, finals: dict, problems: list[str], more=(), **fields
) -> Row:
    """The history checker's verdict on `work` as a row of the table: its first faults follow
    `problems`, then `more`; `fields` are the row's timings and counts."""
    report = check(work.history, finals, joined_at=joined_at(nodes, None))
    problems = problems + report.lost[:5] + report.resurrected[:5] + report.stream_faults[:5]
    return Row(
        fault=name,
        operations=report.operations,
        acknowledged=report.acknowledged,
        unknown=report.unknown,
        lost=len(report.lost),
        resurrected=len(report.resurrected),
        watch_faults=len(report.stream_faults),
        problems=[*problems, *more],
        **fields,
    )


def role_group(launch: Launch, index: int, role: str) -> int:
    """The process group of node `index`'s web server, worker or Redis."""
    port = str(launch.port + index - 1)
    for proc in psutil.Process(launch.proc.pid).children(recursive=True):
        try:
            cmdline = proc.cmdline()
            if role == "web" and "serve" in cmdline and port in cmdline:
                return os.getpgid(proc.pid)
            if role == "worker" and any(arg.startswith(f"node{index}@") for arg in cmdline):
                return os.getpgid(proc.pid)
            # redis-server renames its process and runs in its `dir`, the node's directory
            redis = role == "redis" and "redis" in (cmdline[:1] or [""])[0]
            if redis and proc.cwd() == str(launch.data / f"node{index}"):
                return os.getpgid(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    raise RuntimeError(f"no {role} process for node{index}")


def watch_detection(url: str, target: str, since: float, done: threading.Event) -> list[float]:
    """Poll node1's member list from `since`; the first time it lists `target` not alive."""
    found: list[float] = []

    def poll() -> None:
        while not done.is_set() and not found:
            try:
                members = httpx.get(f"{url}/api/v1/cluster/members", timeout=2).json()
                status = {m["node_id"]: m["status"] for m in members}.get(target)
                if status in ("suspect", "dead"):
                    found.append(time.monotonic() - since)
            except (httpx.HTTPError, ValueError):
                pass
            done.wait(0.25)

    threading.Thread(target=poll, daemon=True).start()
    return found


def run_fault(launch: Launch, name: str, args: argparse.Namespace) -> Row:
    index, role, signum = FAULTS[name]
    urls = [launch.node_url(i) for i in (1, 2, 3)]
    wait_for(lambda: all(health_ok(u) for u in urls), timeout=120, what="three healthy nodes")
    nodes = nodes_of(urls)
    work = Workload(nodes, None, prefix=f"m/{name}/", seed=hash(name) & 0xFFFF)
    work.start()
    probe = Probe(urls[index - 1], prefix=f"m/{name}-probe/")
    problems: list[str] = []
    converged, took, healing_bytes = False, None, None
    done = threading.Event()
    try:
        time.sleep(args.before)
        restarts = launch.output().count(f"kvs: node{index} restarted")
        group = role_group(launch, index, role)
        started = time.monotonic()
        detected = watch_detection(urls[0], nodes[index - 1].node_id, started, done)
        probe.start()
        signal_group(group, signum)
        if signum == signal.SIGSTOP:
            time.sleep(args.hold)
            signal_group(group, signal.SIGCONT)
        else:
            wait_for(
                lambda: launch.output().count(f"kvs: node{index} restarted") > restarts,
                timeout=120,
                what=f"the launcher to restart node{index}",
            )
        wait_for(lambda: health_ok(urls[index - 1]), timeout=120, what=f"node{index} healthy")
        time.sleep(args.after)
        probe.stop()
        work.stop_clients()
        took, converged, healing_bytes = heal_measure(urls, nodes, None, timeout=args.heal_deadline)
        if not converged:
            problems.append(f"Merkle roots still differ after {took:.0f} s")
        finals = finals_settled(work, nodes)
    finally:
        done.set()
        probe.stop()
        work.stop()
    return checked_row(
        name, work, nodes, finals, problems, more=probe.faults()[:5],
        convergence_s=round(took, 1) if converged else None,
        detection_s=round(detected[0], 1) if detected else None,
        healing_bytes=healing_bytes,
    )  # fmt: skip


# --- PostgreSQL restarted under a node --------------------------------------------------------


def run_pg_restart(name: str, args: argparse.Namespace) -> Row:
    """`pg_ctl restart -m fast|immediate` under a one-node cluster on a throwaway PostgreSQL:
    clients and a probe on the node; convergence = seconds from the restart until a write is
    acknowledged again."""
    mode = name.rsplit("-", 1)[1]
    env = {"KVS_AUTH_ENABLED": "false", "KVS_THROTTLE_ANON": ""}
    with tempfile.TemporaryDirectory(prefix="kvs-faults-pg-") as tmp, postgres_running() as pg:
        args_up = ["--database-url", f"{pg.url}/kvs_faults_{{node}}"]
        with kvs_up(Path(tmp), nodes=1, env=env, args=args_up, start_deadline=240) as launch:
            url = launch.node_url(1)
            wait_for(lambda: health_ok(url), timeout=120, what="a healthy node")
            nodes = nodes_of([url])
            work = Workload(nodes, None, prefix=f"m/{name}/", clients_per_node=3)
            probe = Probe(url, prefix=f"m/{name}-probe/")
            work.start()
            try:
                time.sleep(args.before)
                probe.start()
                pg.ctl("-m", mode, "-w", "restart")
                restarted = time.monotonic()
                wait_for(
                    lambda: httpx.put(f"{url}/api/v1/kv/m/{name}-after", json=1, timeout=5)
                    .status_code == 201,
                    timeout=60,
                    what="a write after the restart",
                )  # fmt: skip
                back = time.monotonic() - restarted
                time.sleep(args.after)
                probe.stop()
                work.stop_clients()
                finals = finals_settled(work, nodes)
            finally:
                probe.stop()
                work.stop()
            return checked_row(
                name, work, nodes, finals, [], more=probe.faults()[:5],
                convergence_s=round(back, 1), detection_s=None,
            )  # fmt: skip


PG_FAULTS = {"pg-restart-fast": run_pg_restart, "pg-restart-immediate": run_pg_restart}


# --- network faults: nodes on their own hosts ------------------------------------------------


def net_isolate(c: NetnsCluster) -> None:
    c.isolate(c.hosts[2])
    _must_not_reach(c, c.hosts[0], c.hosts[2])


def net_cut_pair(c: NetnsCluster) -> None:
    c.cut([c.hosts[0]], [c.hosts[1]])
    _must_not_reach(c, c.hosts[0], c.hosts[1])
    _must_not_reach(c, c.hosts[1], c.hosts[0])


def net_cut_majority(c: NetnsCluster) -> None:
    c.cut(c.hosts[:2], c.hosts[2:])
    _must_not_reach(c, c.hosts[0], c.hosts[2])
    _must_not_reach(c, c.hosts[2], c.hosts[1])


def net_one_way_out(c: NetnsCluster) -> None:
    c.cut_one_way(c.hosts[0], c.hosts[2])
    _must_not_reach(c, c.hosts[0], c.hosts[2])
    _must_reach(c, c.hosts[2], c.hosts[0])


def net_one_way_in(c: NetnsCluster) -> None:
    c.cut_one_way(c.hosts[2], c.hosts[0])
    _must_not_reach(c, c.hosts[2], c.hosts[0])
    _must_reach(c, c.hosts[0], c.hosts[2])


def net_loss(c: NetnsCluster) -> None:
    c.lose(c.hosts[2], 20)


def net_throttle(c: NetnsCluster) -> None:
    c.throttle(c.hosts[2], "256kbit")


def net_delay(c: NetnsCluster) -> None:
    c.delay(c.hosts[2], 100, 20)


class FaultNotMade(AssertionError):
    """A network fault was set up but the network does not behave as it should."""


def _must_not_reach(c: NetnsCluster, src: Host, dst: Host) -> None:
    if c.reachable(src, dst):
        raise FaultNotMade(f"{src.node_id} still reaches {dst.node_id}")


def _must_reach(c: NetnsCluster, src: Host, dst: Host) -> None:
    if not c.reachable(src, dst):
        raise FaultNotMade(f"{src.node_id} no longer reaches {dst.node_id}")


# name → (the node whose suspicion by node1 is timed, the fault made on the cluster)
NETWORK_FAULTS = {
    "isolate": (3, net_isolate),
    "cut-pair": (2, net_cut_pair),
    "cut-majority": (3, net_cut_majority),
    "one-way-out": (3, net_one_way_out),
    "one-way-in": (3, net_one_way_in),
    "loss-20": (3, net_loss),
    "throttle": (3, net_throttle),
    "delay": (3, net_delay),
}


def run_network_fault(cluster: NetnsCluster, name: str, args: argparse.Namespace) -> Row:
    """One phase on the namespaced cluster: clients, the fault for --hold s, heal, check."""
    nodes = nodes_of([host.url for host in cluster.hosts])
    observer = cluster.hosts[0].url
    work = Workload(nodes, None, prefix=f"n/{name}/", seed=hash(name) & 0xFFFF)
    work.start()
    problems: list[str] = []
    converged, took = False, None
    done = threading.Event()
    try:
        time.sleep(args.before)
        index, make = NETWORK_FAULTS[name]
        started = time.monotonic()
        detected = watch_detection(observer, f"node{index}", started, done)
        try:
            make(cluster)
        except NetnsUnavailable as missing:
            return _unavailable(name, str(missing))
        except FaultNotMade as error:
            problems.append(f"the fault is not real: {error}")
        time.sleep(max(0.0, args.hold - (time.monotonic() - started)))
        cluster.heal()
        wait_for(
            lambda: _all_alive(observer, {h.node_id for h in cluster.hosts}),
            timeout=120,
            what="node1 to list every node alive after healing",
        )
        time.sleep(args.after)
        work.stop_clients()
        took, converged = merkle_converged(nodes, None, timeout=args.heal_deadline)
        if not converged:
            problems.append(f"Merkle roots still differ after {took:.0f} s")
        finals = finals_settled(work, nodes)
    finally:
        done.set()
        cluster.heal()
        work.stop()
    return checked_row(
        name, work, nodes, finals, problems,
        convergence_s=round(took, 1) if converged else None,
        detection_s=round(detected[0], 1) if detected else None,
    )  # fmt: skip


def run_network_faults(root: Path, names: list[str], env: dict, args: argparse.Namespace):
    """Every network fault of `names` on one namespaced cluster (rows saying why not, if it
    cannot be built here)."""
    reason = netns_missing()
    if reason:
        return [_unavailable(name, reason) for name in names]
    rows = []
    with netns_cluster(root, env=env) as cluster:
        for name in names:
            row = run_network_fault(cluster, name, args)
            rows.append(row)
            print(f"{name}: {asdict(row)}", file=sys.stderr, flush=True)
    return rows


def _all_alive(url: str, node_ids: set[str]) -> bool:
    try:
        members = httpx.get(f"{url}/api/v1/cluster/members", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return node_ids <= {m["node_id"] for m in members if m["status"] == "alive"}


def _unavailable(name: str, reason: str) -> Row:
    return Row(name, 0, 0, 0, 0, 0, 0, None, None, [], unavailable=reason)


# --- clock skew, a full disk and CPU stalls: each on a cluster of its own ----------------------
#
# A phase is clients on every node (--before s), the fault, --hold s, the fault undone, --after s
# of clients, then convergence and the checker, as above; a MemberLog (tests/faults/detection.py)
# polls every node's member table throughout: detection is when node1 listed the node suspect,
# false suspicions are the suspicions outside the time the node was really stopped (P6).


@dataclass
class Phase:
    """What one of these faults does: `make(ctx)` at the fault, `undo(ctx)` after --hold s (the
    node whose suspicion is timed, and whether it is really down meanwhile)."""

    cluster: str  # "skew", "disk" or "plain": the cluster it runs on
    node: int
    make: Callable[[dict], None]
    undo: Callable[[dict], None]
    down: bool = False


def _freeze(ctx: dict, index: int, signum: int) -> None:
    for group in node_groups(ctx["launch"], index):
        signal_group(group, signum)


def _short_stalls(ctx: dict) -> None:
    for _ in range(3):
        _freeze(ctx, 3, signal.SIGSTOP)
        time.sleep(1.0)
        _freeze(ctx, 3, signal.SIGCONT)
        time.sleep(2.0)


def _cpu_load(ctx: dict) -> None:
    ctx["burners"] = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)
    ]


def _cpu_unload(ctx: dict) -> None:
    for burner in ctx.pop("burners", []):
        burner.kill()
        burner.wait()


def _disk_fill(ctx: dict) -> None:
    fill(ctx["filler"], leave=0)


def _disk_free(ctx: dict) -> None:
    ctx["filler"].unlink(missing_ok=True)


def _nothing(ctx: dict) -> None:
    pass


MORE_FAULTS = {
    # node2's clock an hour ahead from the fault on (it stays so for the phases after)
    "clock-ahead": Phase("skew", 2, lambda c: offset_set(c["files"][2], 3600), _nothing),
    # node3's clock an hour behind
    "clock-behind": Phase("skew", 3, lambda c: offset_set(c["files"][3], -3600), _nothing),
    # node3's clock jumps back another hour while it runs
    "clock-jump-back": Phase("skew", 3, lambda c: offset_set(c["files"][3], -7200), _nothing),
    # node2's data directory (a 64 MiB tmpfs) filled for --hold s, then the filler removed
    "disk-full": Phase("disk", 2, _disk_fill, _disk_free),
    # node3's web server and worker frozen together for --hold s (past KVS_DEAD_AFTER)
    "node-stop": Phase(
        "plain",
        3,
        lambda c: _freeze(c, 3, signal.SIGSTOP),
        lambda c: _freeze(c, 3, signal.SIGCONT),
        down=True,
    ),
    # node3 frozen three times for 1 s (under KVS_SUSPECT_AFTER): suspicions are false ones
    "stall-short": Phase("plain", 3, _short_stalls, _nothing),
    # four busy loops on the machine's cores for --hold s
    "cpu-load": Phase("plain", 3, _cpu_load, _cpu_unload),
}
DISK_MB = 64
SKEW_WINDOW_S = 3 * 3600  # KVS_SIGNATURE_WINDOW on the skewed cluster: wider than the skew


def run_more_fault(ctx: dict, name: str, args: argparse.Namespace) -> Row:
    phase, launch = MORE_FAULTS[name], ctx["launch"]
    urls = [launch.node_url(i) for i in (1, 2, 3)]
    wait_for(lambda: all(health_ok(u) for u in urls), timeout=120, what="three healthy nodes")
    nodes = nodes_of(urls)
    members = MemberLog({node.node_id: node.url for node in nodes}).start()
    work = Workload(nodes, None, prefix=f"s/{name}/", seed=hash(name) & 0xFFFF)
    work.start()
    problems: list[str] = []
    converged, took, finals = False, None, {}
    target = nodes[phase.node - 1].node_id
    try:
        time.sleep(args.before)
        started = time.monotonic()
        phase.make(ctx)
        time.sleep(max(0.0, args.hold - (time.monotonic() - started)))
        phase.undo(ctx)
        ended = time.monotonic()
        wait_for(lambda: health_ok(urls[phase.node - 1]), timeout=120, what="the node healthy")
        time.sleep(args.after)
        work.stop_clients()
        took, converged = merkle_converged(nodes, None, timeout=args.heal_deadline)
        if not converged:
            problems.append(f"Merkle roots still differ after {took:.0f} s")
        finals = finals_settled(work, nodes)
    finally:
        work.stop()
        members.stop()
        _cpu_unload(ctx)
    statuses = Counter(op.status for op in work.history.ops if op.status is not None)
    more = [
        f"{n} answers {status}"
        for status, n in statuses.items()
        if status >= 500 and status not in (503, 507)  # syncing, a full disk: clear refusals
    ]
    if name == "disk-full" and not statuses[507]:
        more.append("no write was refused with 507: the disk never filled")
    excused = {target: [(started, ended + 15.0)]} if phase.down else {}
    false = false_suspicions(members.samples, excused=excused)
    detected = detection_s(members.samples, member=target, since=started, observers=["node1"])
    return checked_row(
        name, work, nodes, finals, problems, more=more,
        convergence_s=round(took, 1) if converged else None,
        detection_s=round(detected, 1) if detected is not None else None,
        false_suspicions=len(false),
    )  # fmt: skip


@contextmanager
def _more_cluster(kind: str, root: Path, env: dict) -> Iterator[dict]:
    """A three-node cluster for `kind` of MORE_FAULTS, and what its phases need."""
    ctx: dict = {}
    env = dict(env)
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if kind == "skew":
            ctx["files"] = {i: root / f"node{i}.faketime" for i in (2, 3)}
            for path in ctx["files"].values():
                offset_set(path, 0)
            env.update(faketime_env(ctx["files"]), KVS_SIGNATURE_WINDOW=str(SKEW_WINDOW_S))
        if kind == "disk":
            mount = stack.enter_context(tmpfs(root / "cluster" / "node2", size_mb=DISK_MB))
            ctx["filler"] = mount / "filler"
        ctx["launch"] = stack.enter_context(kvs_up(root, nodes=3, env=env, start_deadline=240))
        yield ctx


def run_more_faults(root: Path, names: list[str], env: dict, args: argparse.Namespace):
    """Each fault of `names` (MORE_FAULTS) on the cluster of its kind, one cluster per kind."""
    rows = []
    for kind in ("plain", "skew", "disk"):
        mine = [name for name in names if MORE_FAULTS[name].cluster == kind]
        if not mine:
            continue
        with _more_cluster(kind, root / kind, env) as ctx:
            for name in mine:
                row = run_more_fault(ctx, name, args)
                rows.append(row)
                print(f"{name}: {asdict(row)}", file=sys.stderr, flush=True)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| fault | operations | acknowledged | no answer | lost | resurrected | watch faults "
        "| convergence s | detection s | false suspicions | bytes |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        if r.unavailable:
            lines.append(f"| {r.fault} | {r.unavailable} |" + " |" * 9)
            continue
        conv = "never" if r.convergence_s is None else f"{r.convergence_s:.1f}"
        det = "—" if r.detection_s is None else f"{r.detection_s:.1f}"
        lines.append(
            f"| {r.fault} | {r.operations} | {r.acknowledged} | {r.unknown} | {r.lost} "
            f"| {r.resurrected} | {r.watch_faults} | {conv} | {det} "
            f"| {'—' if r.false_suspicions is None else r.false_suspicions} "
            f"| {'—' if r.healing_bytes is None else f'{r.healing_bytes:,}'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    every = [*FAULTS, *NETWORK_FAULTS, *MORE_FAULTS]
    parser.add_argument("--faults", nargs="+", choices=sorted([*every, *PG_FAULTS]), default=every)
    parser.add_argument("--before", type=float, default=5.0, help="seconds of clients before")
    parser.add_argument(
        "--hold", type=float, default=8.0, help="seconds a SIGSTOP or a network fault lasts"
    )
    parser.add_argument("--after", type=float, default=5.0, help="seconds of clients after")
    parser.add_argument("--heal-deadline", type=float, default=120.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    env = {"KVS_AUTH_ENABLED": "false", "KVS_THROTTLE_ANON": ""}  # data, not credentials or rates
    process = [name for name in args.faults if name in FAULTS]
    network = [name for name in args.faults if name in NETWORK_FAULTS]
    more = [name for name in args.faults if name in MORE_FAULTS]
    with tempfile.TemporaryDirectory(prefix="kvs-faults-") as tmp:
        if process:
            with kvs_up(Path(tmp), nodes=3, env=env, start_deadline=240) as launch:
                for name in process:
                    row = run_fault(launch, name, args)
                    rows.append(row)
                    print(f"{name}: {asdict(row)}", file=sys.stderr, flush=True)
        if network:
            rows += run_network_faults(Path(tmp) / "hosts", network, env, args)
        if more:
            rows += run_more_faults(Path(tmp) / "more", more, env, args)
    for name in args.faults:
        if name in PG_FAULTS:
            rows.append(row := PG_FAULTS[name](name, args))
            print(f"{name}: {asdict(row)}", file=sys.stderr, flush=True)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(table(rows))
    for row in rows:
        for problem in row.problems:
            print(f"{row.fault}: {problem}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0 if all(not r.problems for r in rows) else 1  # an unavailable fault is no violation


if __name__ == "__main__":
    sys.exit(main())
