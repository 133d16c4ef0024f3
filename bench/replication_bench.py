"""Replication latency: a write on node1 until node3 returns that version, p50/p90/p99/max.

    .venv/bin/python bench/replication_bench.py                  # 1,000 writes, no other load
    .venv/bin/python bench/replication_bench.py --load 0,8        # also with 8 background writers
    .venv/bin/python bench/replication_bench.py --writes 200 --json out.json

A 3-node cluster is started with `.venv/bin/kvs up --nodes 3` (free ports, a temporary data
directory, a random root token) and used once all three nodes are `mode: normal` with 3 alive
members. Then, one at a time, `PUT /api/v1/kv/bench/r{i}` on node1; from the moment its answer
arrives, node3 is read every ~1.5 ms until it returns that exact `version` (or --deadline passes:
counted as a timeout). With --load, K threads keep writing other keys to node1 meanwhile.
The cluster is stopped at the end (SIGINT to the launcher, leftovers killed), also on Ctrl-C.
Exit status: 0 ok, 1 some write timed out, 2 something did not start, 130 interrupted.
"""

import argparse
import json
import os
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KVS = ROOT / ".venv" / "bin" / "kvs"
POLL_S = 0.0015
READY_DEADLINE_S = 180
STARTED: list[subprocess.Popen] = []


# --- Starting and stopping launchers (antientropy_bench.py uses these too) ----------------------


def free_base_port(count: int) -> int:
    """A port P such that P .. P+count-1 are free on the loopback interface right now.

    Picked below the kernel's ephemeral range, so that no outgoing connection takes one of them
    between now and when the launcher's servers bind them.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        base = random.randrange(max(1024, low - 12_000), low - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


def launch(nodes: int, data: Path, env: dict[str, str]) -> tuple[list[str], subprocess.Popen]:
    """Start `kvs up` in its own session (Ctrl-C reaches us, not it); node URLs and process."""
    base = free_base_port(nodes)
    data.mkdir(parents=True)
    cmd = [str(KVS), "up", "--nodes", str(nodes), "--base-port", str(base), "--data", str(data)]
    with open(data / "launcher.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log, start_new_session=True
        )
    STARTED.append(proc)
    return [f"http://127.0.0.1:{base + i}" for i in range(nodes)], proc


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live process, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found[int(stat.parent.name)] = (int(fields[1]), fields[19])
    return found


def _tree(root: int) -> dict[int, str]:
    """`root` and its live descendants: pid -> start time (to never kill a reused pid)."""
    procs, found, todo = _processes(), {}, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            found[pid] = procs[pid][1]
            todo.extend(child for child, (parent, _) in procs.items() if parent == pid)
    return found


def stop_all() -> None:
    """SIGINT each launcher (it stops its nodes), wait up to 30 s, then SIGKILL what is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
    while STARTED:
        proc = STARTED.pop()
        tree = _tree(proc.pid)  # before it exits: its orphans would leave the tree
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        procs = _processes()
        for pid, started in tree.items():
            if pid in procs and procs[pid][1] == started:
                print(f"killing leftover pid {pid}", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    signal.signal(signal.SIGINT, signal.default_int_handler)


def wait_ready(urls: list[str], token: str, proc: subprocess.Popen, alive: int) -> list[dict]:
    """Every node's /api/v1/status once all are `normal` and see `alive` alive members."""
    deadline = time.monotonic() + READY_DEADLINE_S
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=5, trust_env=False) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the launcher exited ({proc.returncode}); see its log")
            try:
                states = [client.get(f"{url}/api/v1/status").json() for url in urls]
                if all(s["mode"] == "normal" and s["members"]["alive"] == alive for s in states):
                    return states
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the nodes were not ready in {READY_DEADLINE_S} s")
            time.sleep(0.5)


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": next((x.split(":", 1)[1].strip() for x in cpuinfo if "model name" in x), "?"),
        "load": f"{os.getloadavg()[0]:.2f}",
        "python": platform.python_version(),
        "command": shlex.join(sys.orig_argv),
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- The measurement -----------------------------------------------------------------------------


def background_writers(url: str, token: str, count: int, stop: threading.Event) -> list[int]:
    """Start `count` threads writing bench/load/* to `url` until `stop`; their write counters."""
    done = [0] * count

    def write(slot: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as client:
            while not stop.is_set():
                key = f"/api/v1/kv/bench/load/{slot}-{done[slot] % 1000}"
                try:
                    if client.put(key, content=b'{"load": %d}' % done[slot]).is_success:
                        done[slot] += 1
                except httpx.HTTPError:
                    time.sleep(0.1)  # a reset connection under overload: just go on

    for slot in range(count):
        threading.Thread(target=write, args=(slot,), daemon=True).start()
    return done


def retry(call, *args, **kwargs) -> httpx.Response:
    """`call(*args, **kwargs)`, again if a kept-alive connection was closed under it (twice)."""
    for attempt in range(3):
        try:
            return call(*args, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def replicated(c3: httpx.Client, key: str, version: str, since: float, deadline_s: float):
    """Poll node3 until it returns `version` of `key`: (seconds since `since` or None, polls)."""
    polls = 0
    while True:
        got = retry(c3.get, key)
        polls += 1
        if got.status_code == 200 and got.json()["version"] == version:
            return time.perf_counter() - since, polls
        if got.status_code not in (200, 404):
            raise RuntimeError(f"GET {key} on node3: {got.status_code} {got.text[:300]}")
        if time.perf_counter() - since > deadline_s:
            return None, polls
        time.sleep(POLL_S)


def measure(urls: list[str], token: str, writes: int, load: int, deadline_s: float) -> dict:
    """`writes` sequential PUTs on node1, each followed by polling node3 for its version."""
    opts = {"headers": {"Authorization": f"Bearer {token}"}, "timeout": 30, "trust_env": False}
    stop = threading.Event()
    done = background_writers(urls[0], token, load, stop)
    lat_ms, put_ms, timeouts, polls = [], [], 0, 0
    started = time.perf_counter()
    try:
        c1, c3 = httpx.Client(base_url=urls[0], **opts), httpx.Client(base_url=urls[2], **opts)
        with c1, c3:
            for i in range(writes):
                key = f"/api/v1/kv/bench/r{i}-l{load}"
                t0 = time.perf_counter()
                answer = retry(c1.put, key, content=b'{"i": %d}' % i)
                t1 = time.perf_counter()
                if not answer.is_success:
                    raise RuntimeError(f"PUT {key}: {answer.status_code} {answer.text[:300]}")
                put_ms.append((t1 - t0) * 1000)
                seconds, n = replicated(c3, key, answer.json()["version"], t1, deadline_s)
                polls += n
                if seconds is None:
                    timeouts += 1
                else:
                    lat_ms.append(seconds * 1000)
    finally:
        stop.set()
    wall = time.perf_counter() - started
    return {
        "load_writers": load,
        "writes": writes,
        "replicated": len(lat_ms),
        "timeouts": timeouts,
        **{f"p{p}_ms": percentile(lat_ms, p) if lat_ms else None for p in (50, 90, 99)},
        "max_ms": max(lat_ms, default=None),
        "put_p50_ms": percentile(put_ms, 50),
        "polls_per_write": polls / writes,
        "load_writes_per_s": sum(done) / wall,
        "latencies_ms": [round(x, 2) for x in lat_ms],
    }


COLUMNS = [  # header, result key, format
    ("load", "load_writers", "{}"),
    ("writes", "writes", "{}"),
    ("timeouts", "timeouts", "{}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p90 ms", "p90_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("max ms", "max_ms", "{:.1f}"),
    ("PUT p50 ms", "put_p50_ms", "{:.1f}"),
    ("load w/s", "load_writes_per_s", "{:.0f}"),
]


def print_table(rows: list[dict]) -> None:
    print("\nreplication latency: PUT answered on node1 -> node3 returns that version")
    print(" ".join(f"{h:>10}" for h, _, _ in COLUMNS))
    for r in rows:
        print(" ".join(("-" if r[k] is None else f.format(r[k])).rjust(10) for _, k, f in COLUMNS))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--writes", type=int, default=1000, help="measured writes per run (1000)")
    p.add_argument("--load", default="0", help="comma list of background writer counts (0)")
    p.add_argument("--deadline", type=float, default=30, help="seconds to wait per write (30)")
    p.add_argument("--json", type=Path, help="also write the results (and every latency) here")
    p.add_argument("--keep", action="store_true", help="keep the cluster's data and logs")
    args = p.parse_args(argv)
    args.load = [int(x) for x in args.load.split(",") if x.strip()]
    return args


def run(args, tmp: Path) -> int:
    info = machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    token = "kvs_" + secrets.token_urlsafe(24)
    urls, proc = launch(3, tmp / "cluster", {"KVS_BOOTSTRAP_TOKEN": token})
    print(f"cluster: {' '.join(urls)} (logs in {tmp / 'cluster'})")
    t0 = time.monotonic()
    wait_ready(urls, token, proc, alive=3)
    print(f"ready after {time.monotonic() - t0:.1f} s: 3 nodes normal, 3 alive members each")
    rows = []
    for load in args.load:
        rows.append(measure(urls, token, args.writes, load, args.deadline))
        r = rows[-1]
        print(f"  load {load}: {r['replicated']}/{r['writes']} replicated, {r['timeouts']} late")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": rows}, indent=2) + "\n")
    return 1 if any(r["timeouts"] for r in rows) else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp, rc = Path(tempfile.mkdtemp(prefix="replication_bench-")), 2
    try:
        rc = run(args, tmp)
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    finally:
        stop_all()
        if rc == 0 and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
