"""PUT/GET throughput and p50/p99 latency of a kvsite node against etcd, measured in one run.

    .venv/bin/python bench/kv_bench.py                      # starts a node and etcd, 10 s per run
    .venv/bin/python bench/kv_bench.py --url http://127.0.0.1:8001 --token TOKEN --skip-etcd
    .venv/bin/python bench/kv_bench.py --duration 5 --ops put --concurrency 32 --json out.json

Without --url a one-node cluster is started with `.venv/bin/kvs up --nodes 1` (web workers,
Celery, embedded Redis) in a temporary directory. etcd (Debian's /usr/bin/etcd, 3.4) is started
on free loopback ports and driven through its v3 JSON gateway. Both stores are prefilled with
bench/k0 .. bench/k9999 (the same value bytes), then for each op x concurrency wrk runs a 2 s
warmup and a measured run against kvsite, then etcd (bench/lua/*.lua pick a key uniformly at
random per request). "cpu" is the server's CPU use during the measured run, in cores (every
process of the started node; "?" with --url); "load" is the 1-minute load average at start.
With a started node, the floor of its own stack is measured in the same run (bench/floor_bench.py,
--no-floor to leave it out): beside the node, the same web server (`kvs serve`, same workers) on
the node's data answers a bare ASGI response, a bare Django view and a bare DRF view, each
measured with the same op (a GET, or a PUT of a body of the same size that the view reads and
drops) at every concurrency right after kvsite, and the table gives kvsite as a share of each.
The node and the floor servers share one Redis of the benchmark's own.
Everything started here is stopped at the end, also on Ctrl-C or SIGTERM.
Exit status: 0 ok, 1 some request failed, 2 something did not start, 130 interrupted.
"""

import argparse
import atexit
import base64
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "lua"
VENV_BIN = ROOT / ".venv" / "bin"
KEYS = 10_000
ERROR_KINDS = ("status", "connect", "read", "write", "timeout")
STARTED: list[subprocess.Popen] = []


def value_bytes(n: int) -> bytes:
    return b'{"n": %d, "pad": "xxxxxxxxxxxxxxxx"}' % n  # the same bytes as in bench/lua/*.lua


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(root: int) -> set[int]:
    """`root` and every live process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def spawn(cmd: list, log: Path, **kw) -> subprocess.Popen:
    """Start `cmd` in its own session (so Ctrl-C reaches us, not it), output to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True, **kw)
    STARTED.append(proc)
    return proc


def stop_all() -> None:
    """SIGTERM each started process group; SIGKILL whatever of its tree is left after 15 s."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
    while STARTED:
        proc = STARTED.pop()
        tree = descendants(proc.pid)  # the launcher's children may sit in other process groups
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 15
        for pid in sorted(tree, key=lambda pid: pid != proc.pid):
            while alive(pid) and time.monotonic() < deadline:
                proc.poll()  # reap the leader so it does not linger as a zombie
                time.sleep(0.1)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait()
    signal.signal(signal.SIGINT, signal.default_int_handler)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")


def start_kvsite(tmp: Path, workers: int) -> tuple[str, str, subprocess.Popen]:
    """A one-node cluster from the launcher with a fresh root token: url, token, process."""
    port, token, log = free_port(), secrets.token_urlsafe(24), tmp / "kvsite.log"
    cmd = [VENV_BIN / "kvs", "up", "--nodes", 1, "--base-port", port, "--data", tmp / "kvs"]
    cmd += ["--workers", workers]
    env = {**os.environ, "KVS_BOOTSTRAP_TOKEN": token}
    proc = spawn([str(a) for a in cmd], log, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, log)
    return url, token, proc


def start_etcd(tmp: Path) -> tuple[str, subprocess.Popen]:
    client, peer = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    log = tmp / "etcd.log"
    cmd = ["etcd", "--name", "default", "--data-dir", str(tmp / "etcd")]
    cmd += ["--listen-client-urls", client, "--advertise-client-urls", client]
    cmd += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
    cmd += ["--initial-cluster", f"default={peer}"]
    proc = spawn(cmd, log)
    wait_http(f"{client}/health", proc, log)
    return client, proc


def prefill(client: httpx.Client, send) -> None:
    """Write all KEYS keys with `send(client, n)` from 16 threads; every answer must be 2xx."""
    if not (first := send(client, 0)).is_success:  # fail fast on a broken server or token
        raise RuntimeError(f"prefill: {first.status_code} {first.text[:500]}")
    with ThreadPoolExecutor(16) as pool:
        bad = [r for r in pool.map(lambda n: send(client, n), range(KEYS)) if not r.is_success]
    if bad:
        raise RuntimeError(f"prefill: {len(bad)} failures, e.g. {bad[0].status_code} {bad[0].text}")


def prefill_kvsite(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        prefill(client, lambda c, n: c.put(f"/api/v1/kv/bench/k{n}", content=value_bytes(n)))
        got = client.get(f"/api/v1/kv/bench/k{KEYS - 1}")
        if got.status_code != 200 or got.json()["value"] != json.loads(value_bytes(KEYS - 1)):
            raise RuntimeError(f"kvsite read-back failed: {got.status_code} {got.text}")


def prefill_etcd(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        put = {n: {"key": b64(f"bench/k{n}"), "value": b64(value_bytes(n))} for n in range(KEYS)}
        prefill(client, lambda c, n: c.post("/v3/kv/put", json=put[n]))
        query = {"key": b64("bench/"), "range_end": b64("bench0"), "count_only": True}
        count = int(client.post("/v3/kv/range", json=query).json().get("count", 0))
        if count != KEYS:
            raise RuntimeError(f"etcd holds {count} bench keys, expected {KEYS}")


def wrk(url: str, script: str, lua_args: list[str], conns: int, seconds: int, pids=None) -> dict:
    """One wrk run; returns req/s, p50/p99 ms, errors and (with `pids`) server/wrk CPU cores."""
    cmd = ["wrk", f"-t{1 if conns == 1 else 2}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s"]
    cmd += ["--latency", "-s", str(LUA / script), url, "--", *lua_args]
    server_cpu = cpu_seconds(pids or set())
    wrk_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    line = next((x for x in out.stdout.splitlines() if x.startswith("KVBENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    raw = json.loads(line.removeprefix("KVBENCH "))
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    errors = sum(raw[k] for k in ERROR_KINDS)
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": errors,
        "server_cpu": (cpu_seconds(pids or set()) - server_cpu) / wall,
        "wrk_cpu": (ru.ru_utime + ru.ru_stime - wrk_cpu.ru_utime - wrk_cpu.ru_stime) / wall,
        "raw": raw,
    }


def measure(target: dict, op: str, conns: int, seconds: int) -> dict:
    lua_args = [op, *target.get("lua_args", [])]
    wrk(target["url"], target["script"], lua_args, conns, 2)  # warmup
    pids = set().union(*(descendants(p.pid) for p in target.get("procs", [])))
    return wrk(target["url"], target["script"], lua_args, conns, seconds, pids)


def cell(r: dict | None) -> str:
    if r is None:
        return f"{'-':>9} {'-':>7} {'-':>7} {'-':>6} {'-':>5}"
    cpu = f"{r['server_cpu']:5.2f}" if r["server_cpu"] else f"{'?':>5}"
    return f"{r['rps']:9.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['errors']:6d} {cpu}"


def details(r: dict) -> str:
    """wrk's own CPU use and any failed requests by kind (status = non-2xx/3xx answers)."""
    kinds = [f"{k} {r['raw'][k]}" for k in ERROR_KINDS if r["raw"][k]]
    return f"wrk cpu {r['wrk_cpu']:.2f}" + (f"; FAILED: {', '.join(kinds)}" if kinds else "")


def print_table(rows: list[tuple[str, dict | None, dict | None]]) -> None:
    head = f"{'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'cpu':>5}"
    print(f"\n{'':8} | {'kvsite':^38} | {'etcd':^38} |")
    print(f"{'':8} | {head} | {head} | ratio kvsite/etcd req/s")
    for name, kv, etcd in rows:
        ratio = f"{kv['rps'] / etcd['rps']:.3f}" if kv and etcd else "-"
        print(f"{name:8} | {cell(kv)} | {cell(etcd)} | {ratio}")


FLOOR_PATHS = {"bare ASGI": "/", "bare Django": "/floor/django", "bare DRF": "/floor/drf"}


def start_with_floors(tmp: Path, workers: int) -> tuple[str, str, subprocess.Popen, dict]:
    """The node, as start_kvsite, with a Redis of our own, and the floor servers beside it on its
    data (bench/floor_bench.py): url, token, process, and a wrk target per floor."""
    sys.modules.setdefault("kv_bench", sys.modules[__name__])  # one STARTED list, one stop_all
    import floor_bench

    redis_url = floor_bench.start_redis(tmp)
    url, token, proc = floor_bench.start_node(tmp, workers, redis_url)
    env, floors = floor_bench.node_env(tmp, redis_url), {}
    for n, (name, cmd, overrides, kinds) in enumerate(floor_bench.servers(workers, False)):
        health = "/" if kinds == ("asgi",) else "/floor/django"
        server_url, server = floor_bench.start_server(tmp, {**env, **overrides}, f"floor{n}", cmd,
                                                      health)  # fmt: skip
        print(f"floor server {name}: {server_url}")
        for kind in kinds:
            label = {"asgi": "bare ASGI", "django": "bare Django", "drf": "bare DRF"}[kind]
            target = server_url + FLOOR_PATHS[label]
            floors[label] = {"script": "floor.lua", "url": target, "procs": [server]}
    return url, token, proc, floors


def print_floor_table(rows: list[tuple[str, dict, dict[str, dict]]]) -> None:
    """kvsite beside the floors of its own stack, each measured with the same op right after."""
    names = list(FLOOR_PATHS)
    print(f"\n{'':8} | {'kvsite':>10} | " + " | ".join(f"{n:>11}" for n in names)
          + " | kvsite as a share of each")  # fmt: skip
    for name, kv, floor in rows:
        shares = ", ".join(f"{kv['rps'] / floor[n]['rps']:.2f}x {n}" for n in names if n in floor)
        cells = " | ".join(
            f"{floor[n]['rps']:11.0f}" if n in floor else f"{'-':>11}" for n in names
        )
        print(f"{name:8} | {kv['rps']:10.0f} | {cells} | {shares}")


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    etcd = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout
    argv = sys.orig_argv  # the exact command line, with the --token value masked
    argv = [a if p != "--token" else "***" for p, a in zip(["", *argv[:-1]], argv, strict=True)]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "load": f"{os.getloadavg()[0]:.2f}",
        "python": platform.python_version(),
        "etcd": etcd.split("\n")[0].removeprefix("etcd Version: "),
        "command": shlex.join(argv),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--ops", default="put,get", help="comma list of put, get")
    p.add_argument("--concurrency", default="1,32", help="comma list of connection counts")
    p.add_argument("--url", help="a running kvsite node (default: start one)")
    p.add_argument("--token", help="bearer token for --url")
    p.add_argument("--skip-etcd", action="store_true", help="measure kvsite only")
    p.add_argument("--workers", type=int, default=2, help="web workers of the started node")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument(
        "--no-floor", dest="floor", action="store_false", help="leave out the floor servers"
    )
    args = p.parse_args(argv)
    if args.url and not args.token:
        p.error("--url needs --token")
    args.ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def run(args, tmp: Path) -> int:
    info = machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    kvsite = {"script": "kvsite.lua", "url": args.url, "lua_args": [args.token or ""]}
    floors: dict[str, dict] = {}
    if not args.url:
        if args.floor:
            kvsite["url"], token, proc, floors = start_with_floors(tmp, args.workers)
        else:
            kvsite["url"], token, proc = start_kvsite(tmp, args.workers)
        kvsite["procs"] = [proc]
        kvsite["lua_args"] = [token]
        print(f"kvsite node at {kvsite['url']} (logs in {tmp}, kept on failure)")
    etcd = None
    if not args.skip_etcd:
        url, proc = start_etcd(tmp)
        etcd = {"script": "etcd.lua", "url": url, "procs": [proc]}
        print(f"etcd at {url}")
    prefill_kvsite(kvsite["url"], kvsite["lua_args"][0])
    if etcd:
        prefill_etcd(etcd["url"])
    print(f"prefilled {KEYS} keys; {args.duration} s per run after a 2 s warmup")
    rows, results, floor_rows = [], [], []
    for op in args.ops:
        for c in args.concurrency:
            kv = measure(kvsite, op, c, args.duration)
            et = measure(etcd, op, c, args.duration) if etcd else None
            rows.append((f"{op.upper()} c{c}", kv, et))
            results.append({"op": op, "concurrency": c, "kvsite": kv, "etcd": et})
            for name, r in (("kvsite", kv), ("etcd", et)):
                if r:
                    print(f"  {op.upper()} c{c} {name}: {r['rps']:.0f} req/s, {details(r)}")
            if floors:
                measured = {kind: measure(t, op, c, args.duration) for kind, t in floors.items()}
                for kind, r in measured.items():
                    print(f"  {op.upper()} c{c} floor {kind}: {r['rps']:.0f} req/s, {details(r)}")
                floor_rows.append((f"{op.upper()} c{c}", kv, measured))
                results[-1]["floor"] = measured
    print_table(rows)
    if floor_rows:
        print_floor_table(floor_rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    failed = sum(r["errors"] for _, kv, et in rows for r in (kv, et) if r)
    if failed:
        print(f"\nFAILED: {failed} failed requests (non-2xx/3xx or socket errors)", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp, rc = Path(tempfile.mkdtemp(prefix="kv_bench-")), 2
    try:
        rc = run(args, tmp)
    except (RuntimeError, OSError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    finally:
        stop_all()
        if rc == 0 or not any(tmp.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
