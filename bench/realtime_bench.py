"""Realtime: watch event latency on the same node and across nodes, pub/sub fan-out latency and the
node's memory before and after, in one run.

    .venv/bin/python bench/realtime_bench.py                       # the defaults below
    .venv/bin/python bench/realtime_bench.py --subscribers 500 --rate 100 --seconds 10
    .venv/bin/python bench/realtime_bench.py --writes 100 --stalled 0 --json out.json
    .venv/bin/python bench/realtime_bench.py --nodes 1       # one node alone: no peers, no forwards

A cluster of --nodes (default 3) is started with `.venv/bin/kvs up` (free ports, a temporary data
directory) and used once every node is `normal` with every member alive.

watch: one watcher of `bench/` on node1 and one on node2; --writes PUTs to node1, one at a time,
each after the previous one's events arrived. Latency is from the PUT's answer to the event's
arrival: on node1 (same node) and on node2 (push replication, then the watch). Then watch
fan-out: --watchers sockets watch one prefix on node1 while PUTs arrive at --watch-rate; latency
from the PUT's send to each event's receipt.

pub/sub: --subscribers sockets subscribe to one topic on node1, spread over --procs receiving
processes (raw asyncio protocols on uvloop, lean enough to keep up), plus --stalled sockets that
complete the handshake and never read. One socket publishes {"data": {"t": send time, "i": n}}
at --rate messages/s for --seconds. Latency is from the publisher's send to a subscriber's
receipt, over every (message, subscriber). RSS is the sum over node1's processes (web workers,
Celery, Redis) before the subscribers connect and after the run, with the stalled sockets still
open. With more than one node, one more subscriber on node2 gets the messages node1 forwards.
Exit status: 0 ok, 1 some event or message was missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import platform
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.helpers import Launch, kvs_up, node_processes, wait_for  # noqa: E402

READY_DEADLINE_S = 180.0
EVENT_DEADLINE_S = 10.0
TOPIC = "bench/fanout"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def ws_url(launch: Launch, index: int, path: str) -> str:
    return launch.node_url(index).replace("http://", "ws://") + path


def cluster_ready(launch: Launch, nodes: int) -> bool:
    for index in range(1, nodes + 1):
        try:
            health = httpx.get(f"{launch.node_url(index)}/health", timeout=2).json()
            members = httpx.get(
                f"{launch.node_url(index)}/api/v1/cluster/members",
                headers={"Authorization": f"Bearer {launch.token}"},
                timeout=2,
            ).json()
        except (httpx.HTTPError, ValueError):
            return False
        if health.get("mode") != "normal" or sum(m["status"] == "alive" for m in members) != nodes:
            return False
    return True


def node_rss(launch: Launch, index: int) -> int:
    """Bytes resident in every process of node `index` (web, Celery, Redis)."""
    node_dir = str(launch.data / f"node{index}")
    total = 0
    for proc in node_processes(launch.data, [launch.port + index - 1]):
        try:
            if proc.environ().get("KVS_DATA_DIR") == node_dir or node_dir in " ".join(
                proc.cmdline()
            ):
                total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def node_cpu(launch: Launch, index: int) -> float:
    """CPU seconds used so far by node `index`'s web workers and Redis (where delivery happens)."""
    node_dir = str(launch.data / f"node{index}")
    total = 0.0
    for proc in node_processes(launch.data, [launch.port + index - 1]):
        try:
            line = " ".join(proc.cmdline())
            mine = proc.environ().get("KVS_DATA_DIR") == node_dir or node_dir in line
            if mine and ("spawn_main" in line or "redis-server" in line):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


# --- watch ---------------------------------------------------------------------------------------


async def watch_latency(launch: Launch, writes: int, nodes: int) -> dict:
    headers = {"Authorization": f"Bearer {launch.token}"}
    path = "/ws/v1/watch?prefix=bench/watch/"
    same, other = [], []
    async with contextlib.AsyncExitStack() as stack:
        on1 = await stack.enter_async_context(
            websockets.connect(ws_url(launch, 1, path), additional_headers=headers)
        )
        watchers = [(on1, same)]
        if nodes > 1:
            on2 = await stack.enter_async_context(
                websockets.connect(ws_url(launch, 2, path), additional_headers=headers)
            )
            watchers.append((on2, other))
        api = await stack.enter_async_context(
            httpx.AsyncClient(base_url=launch.node_url(1), headers=headers, timeout=10)
        )
        for ws, _ in watchers:
            await ws.recv()
        for i in range(writes):
            answer = await api.put(f"/api/v1/kv/bench/watch/{i % 50}", json={"i": i})
            acked = time.perf_counter()
            assert answer.status_code in (200, 201), answer.text
            for ws, into in watchers:
                event = json.loads(await asyncio.wait_for(ws.recv(), EVENT_DEADLINE_S))
                assert event["value"] == {"i": i}, event
                into.append((time.perf_counter() - acked) * 1000)
    return {"same": same, "other": other}


# --- pub/sub fan-out -----------------------------------------------------------------------------


class Receiver(asyncio.Protocol):
    """A websocket subscriber kept lean, so that 500 of them in one process keep up with the node:
    the handshake by hand, then the server's (unmasked) frames parsed straight from the buffer.
    Pings are answered; every text frame goes to `on_frame(payload, arrival time)`."""

    def __init__(self, path: str, host: str, on_frame) -> None:
        self.path, self.host, self.on_frame = path, host, on_frame
        self.buffer = bytearray()
        self.upgraded = False
        self.opened = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.decode(errors="replace")))
                return
            self.upgraded = True
            self.opened.set_result(None)
        now, at, size = time.time(), 0, len(buffer)
        while size - at >= 2:
            opcode, length, head = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
            if size - at < head + length:
                break
            payload = bytes(buffer[at + head : at + head + length])
            at += head + length
            if opcode == 1:
                self.on_frame(payload, now)
            elif opcode == 9:  # ping → pong (client frames are masked; a zero mask)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + bytes(4) + payload)
            elif opcode == 8:
                self.transport.close()
        del buffer[:at]

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))


def receiver(port: int, path: str, sockets: int, expected: int, ready, results, deadline_s) -> None:
    """A process holding `sockets` subscribers; sends back every delivery latency (ms)."""
    import uvloop

    latencies: list[float] = []
    others: dict[str, int] = {}
    ingest: list[float] = []  # publisher's send → the node's published_at, once per message
    seen: set[int] = set()

    def on_frame(payload: bytes, now: float) -> None:
        frame = orjson.loads(payload)
        kind = frame["type"]
        if kind not in ("message", "put"):
            others[kind] = others.get(kind, 0) + 1
            return
        data = frame["data"] if kind == "message" else frame["value"]
        sent = data["t"]
        latencies.append((now - sent) * 1000)
        if kind == "message" and data["i"] not in seen:
            seen.add(data["i"])
            ingest.append(frame["published_at"] - sent * 1000)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        subscribers = []
        for _ in range(sockets):
            _, protocol = await loop.create_connection(
                lambda: Receiver(path, f"127.0.0.1:{port}", on_frame), "127.0.0.1", port
            )
            await protocol.opened
            subscribers.append(protocol)
        ready.put(sockets)
        stop = time.monotonic() + deadline_s
        while len(latencies) < expected * sockets and time.monotonic() < stop:
            await asyncio.sleep(0.05)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        results.put((port, latencies, others, usage.ru_utime + usage.ru_stime, ingest))
        for protocol in subscribers:
            protocol.transport.close()

    uvloop.run(main())


def stalled_socket(port: int, path: str) -> socket.socket:
    """A websocket client that completes the handshake and never reads."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(handshake.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def publish(url: str, rate: float, count: int) -> float:
    """Publish `count` messages at `rate` per second; the achieved rate."""
    async with websockets.connect(url) as ws:
        drain = asyncio.create_task(_drain(ws))
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await ws.send(json.dumps({"data": {"t": time.time(), "i": i}}))
        elapsed = time.perf_counter() - start
        drain.cancel()
    return count / elapsed if elapsed else 0.0


async def _drain(ws) -> None:
    async for _ in ws:
        pass


def subscribers_counted(launch: Launch, index: int, at_least: int) -> bool:
    topics = httpx.get(
        f"{launch.node_url(index)}/api/v1/pubsub/",
        headers={"Authorization": f"Bearer {launch.token}"},
        timeout=5,
    ).json()["topics"]
    return sum(t["subscribers"] for t in topics if t["name"] == TOPIC) >= at_least


def fanout(launch: Launch, args) -> dict:
    path = f"/ws/v1/pubsub/{TOPIC}?token={launch.token}"
    url = ws_url(launch, 1, path)
    count = int(args.rate * args.seconds)
    rss_before = node_rss(launch, 1)
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    shares = [
        args.subscribers // args.procs + (i < args.subscribers % args.procs)
        for i in range(args.procs)
    ]
    deadline = args.seconds + 60
    # node1's subscribers, then one subscriber on node2 (the messages forwarded to a peer)
    ports = [launch.port] * len(shares)
    if args.nodes > 1:
        ports.append(launch.port + 1)
        shares.append(1)
    procs = [
        ctx.Process(target=receiver, args=(port, path, n, count, ready, results, deadline))
        for port, n in zip(ports, shares, strict=True)
    ]
    for proc in procs:
        proc.start()
    connected = sum(ready.get(timeout=120) for _ in procs) - (args.nodes > 1)
    stalled = [stalled_socket(launch.port, path) for _ in range(args.stalled)]
    wait_for(
        lambda: (
            subscribers_counted(launch, 1, connected + len(stalled))
            and (args.nodes == 1 or subscribers_counted(launch, 2, 1))
        ),
        timeout=30,
        what="every subscription counted",
    )
    cpu_before = node_cpu(launch, 1)
    achieved = asyncio.run(publish(url, args.rate, count))
    latencies: list[float] = []
    remote: list[float] = []
    others: dict[str, int] = {}
    client_cpu = 0.0
    ingest: list[float] = []
    for _ in procs:
        port, part, kinds, used, ingested = results.get(timeout=deadline + 30)
        if port != launch.port:
            remote = part
            continue
        client_cpu += used
        ingest = ingest or ingested  # one process's view is enough
        latencies += part
        for kind, n in kinds.items():
            others[kind] = others.get(kind, 0) + n
    for proc in procs:
        proc.join(timeout=30)
    server_cpu = node_cpu(launch, 1) - cpu_before
    time.sleep(1.0)
    rss_after = node_rss(launch, 1)
    for sock in stalled:
        sock.close()
    return {
        "subscribers": connected,
        "stalled": len(stalled),
        "messages": count,
        "rate": achieved,
        "expected": count * connected,
        "delivered": len(latencies),
        "other_frames": others,
        "latencies": latencies,
        "remote": remote,
        "ingest": ingest,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "rss_before": rss_before,
        "rss_after": rss_after,
    }


def watch_fanout(launch: Launch, args) -> dict:
    """--watchers sockets watch bench/wf/ on node1 while PUTs at --watch-rate arrive there."""
    path = f"/ws/v1/watch?prefix=bench/wf/&token={launch.token}"
    count = int(args.watch_rate * args.seconds)
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    deadline = args.seconds + 60
    proc = ctx.Process(
        target=receiver,
        args=(launch.port, path, args.watchers, count, ready, results, deadline),
    )
    proc.start()
    connected = ready.get(timeout=120)
    headers = {"Authorization": f"Bearer {launch.token}"}
    with httpx.Client(base_url=launch.node_url(1), headers=headers, timeout=10) as api:
        start = time.perf_counter()
        for i in range(count):
            time.sleep(max(0.0, start + i / args.watch_rate - time.perf_counter()))
            answer = api.put(f"/api/v1/kv/bench/wf/{i % 100}", json={"t": time.time(), "i": i})
            assert answer.status_code in (200, 201), answer.text
        achieved = count / (time.perf_counter() - start)
    _, latencies, others, _, _ = results.get(timeout=deadline + 30)
    proc.join(timeout=30)
    return {
        "watchers": connected,
        "writes": count,
        "rate": achieved,
        "expected": count * connected,
        "latencies": latencies,
        "others": others,
    }


# --- report --------------------------------------------------------------------------------------


def row(name: str, values: list[float], expected: int, note: str = "") -> str:
    if not values:
        return f"| {name} | 0/{expected} | - | - | - | {note} |"
    p50, p99, top = percentile(values, 50), percentile(values, 99), max(values)
    return f"| {name} | {len(values)}/{expected} | {p50:.1f} | {p99:.1f} | {top:.1f} | {note} |"


def report(watch: dict, fan: dict, wfan: dict | None, args) -> str:
    mb = 1024 * 1024
    growth = (fan["rss_after"] - fan["rss_before"]) / mb
    lines = [
        "| measurement | received | p50 ms | p99 ms | max ms | notes |",
        "|---|---|---|---|---|---|",
        row("watch, same node (PUT answered → event)", watch["same"], args.writes),
        *(
            [
                row(
                    "watch, other node (PUT answered → event)",
                    watch["other"],
                    args.writes,
                    "includes push replication",
                )
            ]
            if args.nodes > 1
            else []
        ),
        row(
            f"pub/sub fan-out, {fan['subscribers']} subscribers on one node",
            fan["latencies"],
            fan["expected"],
            f"{fan['messages']} messages at {fan['rate']:.0f}/s; send → receipt; "
            f"other frames {fan['other_frames'] or 'none'}",
        ),
        row("  of which: publisher's send → published_at", fan["ingest"], fan["messages"]),
        *(
            [
                row(
                    f"watch fan-out, {wfan['watchers']} watchers on one node",
                    wfan["latencies"],
                    wfan["expected"],
                    f"{wfan['writes']} PUTs at {wfan['rate']:.0f}/s; PUT sent → event",
                )
            ]
            if wfan
            else []
        ),
        *(
            [
                row(
                    "pub/sub, one subscriber on node2",
                    fan["remote"],
                    fan["messages"],
                    "forwarded once by node1 (KVS_PUBSUB_FORWARD_GATHER)",
                )
            ]
            if args.nodes > 1
            else []
        ),
        "",
        f"fan-out CPU per delivered frame: node1 web workers + Redis "
        f"{fan['server_cpu'] / max(1, fan['delivered']) * 1e6:.0f} us, subscriber processes "
        f"{fan['client_cpu'] / max(1, fan['delivered']) * 1e6:.0f} us (with their connecting)",
        f"node1 RSS (web workers + Celery + Redis): {fan['rss_before'] / mb:.0f} MiB before the "
        f"subscribers, {fan['rss_after'] / mb:.0f} MiB after the run with {fan['stalled']} "
        f"stalled sockets still open: {growth:+.0f} MiB",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average at start "
        f"{args.load_at_start:.1f}",
    ]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=3, help="cluster size (1: no cross-node rows)")
    p.add_argument("--writes", type=int, default=300, help="PUTs for the watch latency")
    p.add_argument("--subscribers", type=int, default=500, help="pub/sub subscribers on node1")
    p.add_argument("--stalled", type=int, default=10, help="extra subscribers that never read")
    p.add_argument("--rate", type=float, default=100, help="messages published per second")
    p.add_argument("--seconds", type=float, default=10, help="how long to publish")
    p.add_argument("--procs", type=int, default=1, help="processes holding the subscribers")
    p.add_argument("--watchers", type=int, default=200, help="watch sockets on node1 (0: skip)")
    p.add_argument("--watch-rate", type=float, default=50, help="PUTs per second they watch")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="realtime_bench-") as tmp:
        with kvs_up(Path(tmp), nodes=args.nodes, start_deadline=READY_DEADLINE_S) as launch:
            wait_for(
                lambda: cluster_ready(launch, args.nodes),
                timeout=READY_DEADLINE_S,
                interval=0.5,
                what="every node normal, with every member alive",
            )
            watch = asyncio.run(watch_latency(launch, args.writes, args.nodes))
            fan = fanout(launch, args)
            wfan = watch_fanout(launch, args) if args.watchers else None
    print(report(watch, fan, wfan, args))
    if args.json:
        summary = {k: v for k, v in fan.items() if k not in ("latencies", "ingest", "remote")}
        for name, values in (
            ("watch_same", watch["same"]),
            ("watch_other", watch["other"]),
            ("fanout", fan["latencies"]),
            ("pubsub_other_node", fan["remote"]),
        ):
            if values:
                summary[name] = {
                    "n": len(values),
                    "p50": percentile(values, 50),
                    "p99": percentile(values, 99),
                    "max": max(values),
                }
        args.json.write_text(json.dumps(summary, indent=2))
    complete = (
        len(watch["same"]) == args.writes
        and fan["delivered"] == fan["expected"]
        and (args.nodes == 1 or len(watch["other"]) == args.writes)
        and (args.nodes == 1 or len(fan["remote"]) == fan["messages"])
        and (wfan is None or len(wfan["latencies"]) == wfan["expected"])
    )
    return 0 if complete else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
