"""The fault matrix: one three-node `kvs up` cluster, and for each fault a phase of concurrent
clients and watches on every node (tests/faults/workload.py), the fault, healing, and the history
checker (tests/faults/history.py) on what the clients were told.

    .venv/bin/python bench/faults.py                       # every fault
    .venv/bin/python bench/faults.py --faults web-kill web-stop --hold 10 --json out.json

Faults, on node2 or node3 (never node1, which the detection time is read from):
  web-kill     kill -9 of node2's web server (the launcher restarts the node's web and worker)
  web-stop     SIGSTOP of node3's web server for --hold seconds, then SIGCONT
  worker-kill  kill -9 of node2's Celery worker (the launcher starts a new one; web stays up)
  worker-stop  SIGSTOP of node3's Celery worker for --hold seconds (no gossip, push or
               anti-entropy from it; its web server keeps taking writes)
  redis-kill   kill -9 of node2's Redis (broker, channel layer and cache); the launcher starts it
               again on the same port after its restart delay, the node's web and worker stay up
  redis-stop   SIGSTOP of node3's Redis for --hold seconds, then SIGCONT
  pg-restart-fast, pg-restart-immediate
               `pg_ctl restart -m fast|immediate` of the PostgreSQL under a one-node cluster of
               its own (tests/faults/deps.py starts a throwaway server; needs PostgreSQL)
Per phase: clients for --before seconds, the fault, the node back (health 200), clients for
--after seconds, clients stopped; convergence = seconds from then until every node reports the
same Merkle root; bytes = node-to-node bytes meanwhile, summed over the nodes' metrics
(`kvs_cluster_bytes_total`, on the wire, gossip included); detection = seconds from the fault
until node1 lists the node suspect or dead (— when it never did). Answers of the faulted node
other than a success or a JSON 503 count as problems (tests/faults/deps.py's probe).
Exit status: 0 no violation, 1 the checker found one or roots never met.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.faults.deps import Probe, heal_measure, postgres_running  # noqa: E402
from tests.faults.history import check  # noqa: E402
from tests.faults.workload import (  # noqa: E402
    Workload,
    finals_read,
    joined_at,
    nodes_of,
    streams_caught_up,
)
from tests.integration.helpers import Launch, health_ok, kvs_up, signal_group, wait_for  # noqa: E402

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
    healing_bytes: int | None = None


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
    converged, took = False, None
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
        finals = finals_read(nodes, None, work.history.keys())
        deadline = time.monotonic() + 30
        while not streams_caught_up(work.history, finals) and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        done.set()
        probe.stop()
        work.stop()
    report = check(work.history, finals, joined_at=joined_at(nodes, None))
    problems += report.lost[:5] + report.resurrected[:5] + report.stream_faults[:5]
    problems += probe.faults()[:5]
    return Row(
        fault=name,
        operations=report.operations,
        acknowledged=report.acknowledged,
        unknown=report.unknown,
        lost=len(report.lost),
        resurrected=len(report.resurrected),
        watch_faults=len(report.stream_faults),
        convergence_s=round(took, 1) if converged else None,
        detection_s=round(detected[0], 1) if detected else None,
        problems=problems,
        healing_bytes=healing_bytes,
    )


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
                finals = finals_read(nodes, None, work.history.keys())
                deadline = time.monotonic() + 30
                while not streams_caught_up(work.history, finals) and time.monotonic() < deadline:
                    time.sleep(0.25)
            finally:
                probe.stop()
                work.stop()
            report = check(work.history, finals, joined_at=joined_at(nodes, None))
    problems = report.lost[:5] + report.resurrected[:5] + report.stream_faults[:5]
    problems += probe.faults()[:5]
    return Row(
        fault=name,
        operations=report.operations,
        acknowledged=report.acknowledged,
        unknown=report.unknown,
        lost=len(report.lost),
        resurrected=len(report.resurrected),
        watch_faults=len(report.stream_faults),
        convergence_s=round(back, 1),
        detection_s=None,
        problems=problems,
    )


# Faults that run on a cluster of their own, after those of the shared cluster.
STANDALONE = {
    "pg-restart-fast": run_pg_restart,
    "pg-restart-immediate": run_pg_restart,
}


def table(rows: list[Row]) -> str:
    lines = [
        "| fault | operations | acknowledged | no answer | lost | resurrected | watch faults "
        "| convergence s | detection s | bytes |",
        "|" + "---|" * 10,
    ]
    for r in rows:
        conv = "never" if r.convergence_s is None else f"{r.convergence_s:.1f}"
        det = "—" if r.detection_s is None else f"{r.detection_s:.1f}"
        healing = "—" if r.healing_bytes is None else f"{r.healing_bytes:,}"
        lines.append(
            f"| {r.fault} | {r.operations} | {r.acknowledged} | {r.unknown} | {r.lost} "
            f"| {r.resurrected} | {r.watch_faults} | {conv} | {det} | {healing} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faults", nargs="+", choices=sorted(FAULTS | STANDALONE), default=list(FAULTS)
    )
    parser.add_argument("--before", type=float, default=5.0, help="seconds of clients before")
    parser.add_argument("--hold", type=float, default=8.0, help="seconds a SIGSTOP lasts")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of clients after")
    parser.add_argument("--heal-deadline", type=float, default=120.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    env = {"KVS_AUTH_ENABLED": "false", "KVS_THROTTLE_ANON": ""}  # data, not credentials or rates
    shared = [name for name in args.faults if name in FAULTS]
    with tempfile.TemporaryDirectory(prefix="kvs-faults-") as tmp:
        with kvs_up(Path(tmp), nodes=3, env=env, start_deadline=240) as launch:
            for name in shared:
                row = run_fault(launch, name, args)
                rows.append(row)
                print(f"{name}: {asdict(row)}", file=sys.stderr, flush=True)
    for name in args.faults:
        if name in STANDALONE:
            rows.append(row := STANDALONE[name](name, args))
            print(f"{name}: {asdict(row)}", file=sys.stderr, flush=True)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(table(rows))
    for row in rows:
        for problem in row.problems:
            print(f"{row.fault}: {problem}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0 if all(not r.problems for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
