"""The Python client's own cost per GET and PUT, against a raw httpx loop doing the same requests.

    .venv/bin/python bench/client_bench.py                     # in process: no server, no network
    .venv/bin/python bench/client_bench.py --url http://127.0.0.1:8001 --token TOKEN -n 2000

Without --url both loops talk to an httpx.MockTransport that answers at once, so the figures are
the client side alone: building the request, sending it through httpx, reading the answer (the
raw loop: `response.json()`; kvsite_client: status check, typed errors, failover bookkeeping).
With --url both loops run sequentially, on one connection, against a real node, and the
difference is the client's overhead inside a real round trip. Prints µs per operation and the
1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import httpx

from kvsite_client import Client

ENTRY = {"key": "bench/k", "value": {"n": 1}, "version": "0" * 36, "timestamp": 1, "revision": 1}


def mock() -> httpx.MockTransport:
    body = json.dumps(ENTRY).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        status = 200
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


def raw_loop(http: httpx.Client, base: str, op: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        url = f"{base}/api/v1/kv/bench/k{i % 100}"
        if op == "get":
            response = http.get(url)
        else:
            response = http.put(url, content=b'{"n": 1}')
        response.raise_for_status()
        response.json()
    return (time.perf_counter() - start) / n * 1e6


def client_loop(kv: Client, op: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        if op == "get":
            kv.get(f"bench/k{i % 100}")
        else:
            kv.put(f"bench/k{i % 100}", {"n": 1})
    return (time.perf_counter() - start) / n * 1e6


def measure(args: argparse.Namespace) -> dict:
    base = args.url or "http://bench.invalid"
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    results = {}
    for op in ("put", "get"):  # put first: the keys exist for the gets
        raws, clients = [], []
        for _ in range(args.rounds):
            transport = None if args.url else mock()
            with httpx.Client(headers=headers, transport=transport) as http:
                raws.append(raw_loop(http, base, op, args.n))
            transport = None if args.url else mock()
            with Client([base], args.token, transport=transport) as kv:
                clients.append(client_loop(kv, op, args.n))
        raw, client = statistics.median(raws), statistics.median(clients)
        results[op] = {"raw_us": round(raw, 1), "client_us": round(client, 1),
                       "overhead_us": round(client - raw, 1)}  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running node (default: in process, no server)")
    parser.add_argument("--token", default=os.environ.get("KVS_TOKEN", "t"))
    parser.add_argument("-n", type=int, default=5000, help="operations per loop (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="loops per figure; the median (3)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    results = measure(args)
    where = args.url or "in process (httpx.MockTransport)"
    print(f"client overhead, {where}, {args.n} ops x {args.rounds} rounds, load {load:.2f}")
    for op, row in results.items():
        print(f"  {op.upper():4} raw httpx {row['raw_us']:8.1f} µs/op   kvsite_client "
              f"{row['client_us']:8.1f} µs/op   overhead {row['overhead_us']:+7.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
