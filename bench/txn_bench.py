"""Transaction throughput with 1, 8 and 64 ops, beside single PUTs, on one node.

    .venv/bin/python bench/txn_bench.py                     # 10 s per row
    .venv/bin/python bench/txn_bench.py --duration 5 --clients 1,8 --json out.json

A one-node cluster is started with `kvs up --nodes 1`. Each row runs `--clients` client threads
(one connection each) for `--duration` seconds: either single `PUT /api/v1/kv/{key}`, or
`POST /api/v1/txn` with one compare (the first key absent, so every transaction's success branch
runs) and N puts of ~60-byte values to keys of its own. Prints transactions/s, keys written/s
and latency p50/p99 per row, with the 1-minute load average; every answer is checked (a failed
request or a transaction that did not succeed is counted and makes the exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from replication_bench import launch, machine_info, percentile, stop_all, wait_ready


def worker(url: str, token: str, ops: int, name: str, stop: threading.Event, out: dict) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies, failures, n = [], 0, 0
    with httpx.Client(headers=headers, timeout=30, trust_env=False) as client:
        while not stop.is_set():
            n += 1
            value = {"n": n, "who": name, "pad": "x" * 32}
            started = time.perf_counter()
            if ops == 0:
                answer = client.put(f"{url}/api/v1/kv/bench/put/{name}/{n}", json=value)
                ok = answer.status_code == 201
            else:
                keys = [f"bench/txn/{name}/{n}/{i}" for i in range(ops)]
                body = {
                    "compare": [{"key": keys[0], "absent": True}],
                    "success": [{"op": "put", "key": k, "value": value} for k in keys],
                    "failure": [],
                }
                answer = client.post(f"{url}/api/v1/txn", json=body)
                ok = answer.status_code == 200 and answer.json().get("succeeded") is True
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
    out[name] = (latencies, failures)


def row(url: str, token: str, ops: int, clients: int, seconds: float) -> dict:
    stop, out = threading.Event(), {}
    tag = secrets.token_hex(3)
    threads = [
        threading.Thread(target=worker, args=(url, token, ops, f"{tag}{i}", stop, out))
        for i in range(clients)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies = [ms for lat, _ in out.values() for ms in lat]
    done, failures = len(latencies), sum(f for _, f in out.values())
    return {
        "kind": "PUT" if ops == 0 else f"txn {ops} ops",
        "clients": clients,
        "per_s": round(done / elapsed),
        "keys_per_s": round(done * max(ops, 1) / elapsed),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "failed": failures,
        "load": round(os.getloadavg()[0], 2),
    }


def run(args, tmp: Path) -> int:
    info = machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    token = "kvs_" + secrets.token_urlsafe(24)
    urls, proc = launch(1, tmp / "cluster", {"KVS_BOOTSTRAP_TOKEN": token})
    wait_ready(urls, token, proc, alive=1)
    rows = []
    for clients in args.clients:
        for ops in (0, 1, 8, 64):
            rows.append(row(urls[0], token, ops, clients, args.duration))
            r = rows[-1]
            print(f"  {r['kind']:>10} c{clients}: {r['per_s']}/s, {r['keys_per_s']} keys/s, "
                  f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, failed {r['failed']}")  # fmt: skip
    print("\n| request | clients | per s | keys per s | p50 ms | p99 ms | failed | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['clients']} | {r['per_s']:,} | {r['keys_per_s']:,} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['failed']} | {r['load']} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    return 1 if any(r["failed"] for r in rows) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row (10)")
    parser.add_argument("--clients", default="1,8", help="comma list of client threads (1,8)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp, rc = Path(tempfile.mkdtemp(prefix="txn_bench-")), 2
    try:
        rc = run(args, tmp)
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    finally:
        stop_all()
        if rc == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
