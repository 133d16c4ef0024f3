"""What zstd compression saves and costs, on a corpus of 2-20 KiB JSON documents.

    .venv/bin/python bench/compression_bench.py                  # 1,000 documents
    .venv/bin/python bench/compression_bench.py --docs 300 --json out.json

1. In process: each document's size as JSON and zstd-compressed (level 3, as the node stores and
   sends it), and the CPU time to compress and to inflate it (median of 5 per document).
2. On a real two-node cluster, once with compression (KVS_COMPRESS_MIN_BYTES=4096, the default)
   and once without (a threshold no document reaches): every document PUT to node 1 by one client
   (latency p50/p99), then waited for on node 2 (replication time); the bytes node 1 sent to node 2
   as on the wire and as JSON (`kvs_cluster_bytes_total`); after the cluster stops, the bytes its
   values take in node 1's SQLite table and the database file's size.
Exit status: 0 ok, 1 a check failed (a document came back different), 2 the cluster did not start.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import zstandard
from replication_bench import launch, machine_info, percentile, stop_all, wait_ready

WORDS = (
    "order customer shipped pending invoice address street city region postal country note item "
    "product colour size weight price currency discount tax total warehouse carrier tracking "
    "delivered returned refund priority express standard gift wrap message account premium"
).split()
OFF = 1 << 40  # a threshold no document reaches


def document(rng: random.Random, target: int) -> bytes:
    """An order-like JSON document of about `target` bytes: repeated field names, words from a
    small vocabulary, numbers, timestamps and random ids, as application records have."""
    doc = {
        "id": secrets.token_hex(16),
        "customer": {
            "name": " ".join(rng.choices(WORDS, k=2)).title(),
            "email": f"{rng.choice(WORDS)}.{rng.randrange(10_000)}@example.com",
            "street": f"{rng.randrange(1, 400)} {rng.choice(WORDS).title()} Street",
            "city": rng.choice(WORDS).title(),
            "country": rng.choice(["FR", "DE", "NL"]),
        },
        "created_at": 1_790_000_000_000 + rng.randrange(10**9),
        "status": rng.choice(["pending", "shipped", "delivered", "returned"]),
        "items": [],
    }
    while len(json.dumps(doc)) < target:
        doc["items"].append(
            {
                "sku": f"SKU-{rng.randrange(100_000):05d}",
                "name": " ".join(rng.choices(WORDS, k=rng.randrange(2, 5))),
                "quantity": rng.randrange(1, 9),
                "price": round(rng.uniform(1, 500), 2),
                "tags": rng.sample(WORDS, k=3),
                "tracking": secrets.token_hex(6),
            }
        )
    return json.dumps(doc, separators=(",", ":")).encode()


def corpus(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [document(rng, rng.randrange(2 * 1024, 20 * 1024)) for _ in range(count)]


def cpu_costs(docs: list[bytes]) -> dict:
    compressor, decompressor = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    packed, deflate_us, inflate_us = 0, [], []
    for doc in docs:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            small = compressor.compress(doc)
            times.append(time.perf_counter() - started)
        deflate_us.append(statistics.median(times) * 1e6)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            decompressor.decompress(small)
            times.append(time.perf_counter() - started)
        inflate_us.append(statistics.median(times) * 1e6)
        packed += len(small)
    raw = sum(map(len, docs))
    return {
        "docs": len(docs),
        "json_bytes": raw,
        "zstd_bytes": packed,
        "ratio": round(raw / packed, 2),
        "compress_us_p50": round(statistics.median(deflate_us), 1),
        "inflate_us_p50": round(statistics.median(inflate_us), 1),
    }


def sent_bytes(url: str, token: str) -> dict[str, float]:
    """Node-to-node bytes this node sent, by form, from its /metrics."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    totals = {"wire": 0.0, "json": 0.0}
    for line in text.splitlines():
        if line.startswith("kvs_cluster_bytes_total{") and 'direction="sent"' in line:
            form = "wire" if 'form="wire"' in line else "json"
            totals[form] += float(line.rsplit(" ", 1)[1])
    return totals


def cluster_run(docs: list[bytes], threshold: int, tmp: Path) -> dict:
    token = "kvs_" + secrets.token_urlsafe(24)
    data = tmp / f"cluster-{'on' if threshold < OFF else 'off'}"
    env = {"KVS_BOOTSTRAP_TOKEN": token, "KVS_COMPRESS_MIN_BYTES": str(threshold)}
    urls, proc = launch(2, data, env)
    wait_ready(urls, token, proc, alive=2)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    before = sent_bytes(urls[0], token)
    latencies, versions = [], {}
    with httpx.Client(headers=headers, timeout=30, trust_env=False) as client:
        started = time.monotonic()
        for n, doc in enumerate(docs):
            t = time.perf_counter()
            answer = client.put(f"{urls[0]}/api/v1/kv/bench/doc/{n:05d}", content=doc)
            latencies.append((time.perf_counter() - t) * 1000)
            answer.raise_for_status()
            versions[n] = answer.json()["version"]
        put_s = time.monotonic() - started
        last = len(docs) - 1
        deadline = time.monotonic() + 120
        while True:
            got = client.get(f"{urls[1]}/api/v1/kv/bench/doc/{last:05d}")
            if got.status_code == 200 and got.json()["version"] == versions[last]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("node 2 did not receive the documents in 120 s")
            time.sleep(0.05)
        replicated_s = time.monotonic() - started
        same = all(
            client.get(f"{urls[1]}/api/v1/kv/bench/doc/{n:05d}").json()["value"]
            == json.loads(docs[n])
            for n in range(0, len(docs), max(1, len(docs) // 50))
        )
    after = sent_bytes(urls[0], token)
    stop_all()
    database = data / "node1" / "kvsite.sqlite3"
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT sum(length(value)) FROM kv_entry WHERE key LIKE 'bench/%'")
        value_bytes = stored.fetchone()[0]
    return {
        "compression": "on (4096)" if threshold < OFF else "off",
        "put_p50_ms": round(percentile(latencies, 50), 2),
        "put_p99_ms": round(percentile(latencies, 99), 2),
        "puts_per_s": round(len(docs) / put_s),
        "replicated_s": round(replicated_s, 2),
        "wire_sent_bytes": int(after["wire"] - before["wire"]),
        "json_sent_bytes": int(after["json"] - before["json"]),
        "stored_value_bytes": value_bytes,
        "database_bytes": database.stat().st_size,
        "same_on_node2": same,
    }


def _cell(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def run(args, tmp: Path) -> int:
    info = machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    docs = corpus(args.docs)
    cpu = cpu_costs(docs)
    print(
        f"corpus: {cpu['docs']} documents, {cpu['json_bytes']:,} bytes as JSON, "
        f"{cpu['zstd_bytes']:,} zstd ({cpu['ratio']}x); compress p50 {cpu['compress_us_p50']} us, "
        f"inflate p50 {cpu['inflate_us_p50']} us per document"
    )
    rows = [cluster_run(docs, threshold, tmp) for threshold in (4096, OFF)]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    info["load_after"] = f"{__import__('os').getloadavg()[0]:.2f}"
    print(f"load average after: {info['load_after']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "cpu": cpu, "runs": rows}, indent=2))
    return 0 if all(r["same_on_node2"] for r in rows) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp, rc = Path(tempfile.mkdtemp(prefix="compression_bench-")), 2
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
