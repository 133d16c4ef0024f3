"""Merkle anti-entropy cost: time, messages and bytes to repair N differing keys of 100,000.

    .venv/bin/python bench/antientropy_bench.py              # 100,000 keys; 0, 10, 10,000 differ
    .venv/bin/python bench/antientropy_bench.py --keys 20000 --big 2000 --json out.json

Two nodes that are NOT clustered with each other (two `.venv/bin/kvs up --nodes 1` launchers, own
ports and data directories, no seeds) share a KVS_CLUSTER_SECRET set here, so each accepts the
other's signed internal requests while neither has a peer of its own: Celery's periodic
anti-entropy and push find no alive member and do nothing (checked: `members.alive` == 1).
Both stores get the same --keys versions (same key, version id, hlc, origin), generated
deterministically here and applied with `manage.py kvs_versions_apply` in each node's environment.
A first sync reconciles what the two bootstraps wrote differently (the root user and token
records). Then, per scenario, node B alone gets newer versions of existing keys (and, for the big
scenario, as many new keys), and `manage.py kvs_merkle_sync B_URL --json` runs in node A's
environment; its report (messages, JSON payload bytes each way, differing buckets, pulled,
pushed, seconds of the exchange itself) is tabulated and both nodes' merkle_root must then agree.
Exit status: 0 ok, 1 the trees disagree after a sync, 2 something did not start, 130 interrupted.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from replication_bench import ROOT, launch, machine_info, stop_all, wait_ready

NAMESPACE = uuid.UUID("0b6f3d4e-5a1c-4f0e-9d2b-7c8e1a3f5b60")
BASE_MS = 1_700_000_000_000  # 2023-11-14: every generated hlc lies in the past
ORIGIN, ORIGIN_JOINED_AT = "bench-origin", 1_600_000_000_000


def version(key: str, generation: int, n: int) -> dict:
    """The wire form of generation `generation` of `key`; the same on every call."""
    return {
        "key": key,
        "version": str(uuid.uuid5(NAMESPACE, f"{key}#{generation}")),
        "hlc": ((BASE_MS + generation * 3_600_000) << 16) + n,
        "origin": ORIGIN,
        "origin_joined_at": ORIGIN_JOINED_AT,
        "deleted": False,
        "value": json.dumps({"n": n, "gen": generation, "pad": "x" * 40}),
        "expires_at": None,
        "owner": "root",
        "group": None,
        "mode": 0o764,
    }


def key(n: int) -> str:
    return f"bench/ae/{n:07d}"


def write_versions(path: Path, versions) -> Path:
    with path.open("w") as out:
        out.writelines(json.dumps(v) + "\n" for v in versions)
    return path


def node_env(data: Path, url: str, secret: str) -> dict[str, str]:
    """The environment `kvs up` gives the node in `data`/node1, for one-off manage.py commands."""
    conf = dict(
        line.split(" ", 1)
        for line in (data / "node1" / "redis.conf").read_text().split("\n")
        if " " in line
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kvsite.settings",
        "KVS_DATA_DIR": str(data / "node1"),
        "KVS_NODE_ID": "node1",
        "KVS_ADVERTISE_URL": url,
        "KVS_SEEDS": "",
        "KVS_CLUSTER_SECRET": secret,
        "REDIS_URL": f"redis://:{conf['requirepass']}@127.0.0.1:{conf['port']}/0",
        "KVS_PUSH_ON_COMMIT": "false",  # no peers anyway: nothing to push
    }


def manage(env: dict[str, str], *args: str) -> dict:
    """Run `manage.py *args --json` in a node's environment; its JSON line."""
    cmd = [sys.executable, "manage.py", *args, "--json"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def statuses(client: httpx.Client, urls: list[str]) -> list[dict]:
    return [client.get(f"{url}/api/v1/status").raise_for_status().json() for url in urls]


def sync(client, urls, env_a, name: str, size: int, differing: int | None = None) -> dict:
    """Sync A with B, check that the trees agree afterwards; the table row."""
    report = manage(env_a, "kvs_merkle_sync", urls[1])
    a, b = statuses(client, urls)
    return {
        "scenario": name,
        "differing": report["pulled"] + report["pushed"] if differing is None else differing,
        "store": size,
        "seconds": report["seconds"],
        "messages": report["messages"],
        "bytes_sent": report["bytes_sent"],
        "bytes_received": report["bytes_received"],
        "kib": (report["bytes_sent"] + report["bytes_received"]) / 1024,
        "buckets": len(report["buckets"]),
        "pulled": report["pulled"],
        "pushed": report["pushed"],
        "roots_agree": a["merkle_root"] == b["merkle_root"] and a["keys"] == b["keys"],
        "keys_after": a["keys"],
    }


COLUMNS = [  # header, row key, width, format
    ("scenario", "scenario", 24, "{}"),
    ("differing", "differing", 9, "{:,}"),
    ("store", "store", 8, "{:,}"),
    ("time s", "seconds", 7, "{:.3f}"),
    ("msgs", "messages", 5, "{}"),
    ("sent B", "bytes_sent", 11, "{:,}"),
    ("recv B", "bytes_received", 11, "{:,}"),
    ("total KiB", "kib", 9, "{:.1f}"),
    ("buckets", "buckets", 7, "{}"),
    ("pulled", "pulled", 7, "{}"),
    ("pushed", "pushed", 6, "{}"),
    ("roots agree", "roots_agree", 11, "{}"),
]


def print_table(rows: list[dict]) -> None:
    def line(cells: list[str]) -> str:
        widths = [w for *_, w, _ in COLUMNS]
        return " ".join(
            [cells[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        )

    print("\n" + line([h for h, *_ in COLUMNS]))
    for r in rows:
        print(line([f.format(r[k]) for _, k, _w, f in COLUMNS]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keys", type=int, default=100_000, help="keys in both stores (100,000)")
    p.add_argument("--small", type=int, default=10, help="keys differing, small case (10)")
    p.add_argument("--big", type=int, default=10_000, help="keys differing, big case (10,000)")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    return p.parse_args(argv)


def run(args, tmp: Path) -> int:
    info = machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    secret, token = secrets.token_urlsafe(48), "kvs_" + secrets.token_urlsafe(24)
    env = {"KVS_CLUSTER_SECRET": secret, "KVS_BOOTSTRAP_TOKEN": token}
    (url_a,), proc_a = launch(1, tmp / "a", env)
    (url_b,), proc_b = launch(1, tmp / "b", env)
    urls = [url_a, url_b]
    print(f"node A {url_a}, node B {url_b}: two one-node clusters (logs in {tmp})")
    for url, proc in zip(urls, (proc_a, proc_b), strict=True):
        wait_ready([url], token, proc, alive=1)
    env_a, env_b = node_env(tmp / "a", url_a, secret), node_env(tmp / "b", url_b, secret)

    t0 = time.monotonic()
    base = write_versions(tmp / "base.jsonl", (version(key(n), 0, n) for n in range(args.keys)))
    with ThreadPoolExecutor(2) as pool:
        loads = list(pool.map(lambda e: manage(e, "kvs_versions_apply", str(base)), (env_a, env_b)))
    print(f"loaded {args.keys:,} identical versions into A and B in {time.monotonic() - t0:.1f} s")
    if any(load["applied"] != args.keys for load in loads):
        raise RuntimeError(f"expected {args.keys} versions applied on each node, got {loads}")

    headers = {"Authorization": f"Bearer {token}"}
    rows = []
    with httpx.Client(headers=headers, timeout=30, trust_env=False) as client:
        rows.append(sync(client, urls, env_a, "setup: bootstrap records", args.keys))
        rows.append(sync(client, urls, env_a, "identical", args.keys, 0))
        step = max(1, args.keys // args.small)
        small = [version(key(n), 1, n) for n in range(0, args.keys, step)][: args.small]
        manage(env_b, "kvs_versions_apply", str(write_versions(tmp / "small.jsonl", small)))
        rows.append(sync(client, urls, env_a, f"{args.small} newer on B", args.keys, args.small))
        half = args.big // 2
        step = max(1, args.keys // half)
        newer = [version(key(n), 2, n) for n in range(1, args.keys, step)][:half]
        new = [version(key(args.keys + n), 0, n) for n in range(args.big - len(newer))]
        manage(env_b, "kvs_versions_apply", str(write_versions(tmp / "big.jsonl", newer + new)))
        name = f"{len(newer)} newer+{len(new)} new"
        rows.append(sync(client, urls, env_a, name, args.keys, args.big))
        rows.append(sync(client, urls, env_a, "identical again", args.keys + len(new), 0))
        alive = [s["members"]["alive"] for s in statuses(client, urls)]
    print_table(rows)
    print(f"members.alive on A and B: {alive} (1 = each node alone: only these syncs ran)")
    print("bytes: JSON payloads of the internal messages (no HTTP headers); time: the exchange")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": rows}, indent=2) + "\n")
    return 0 if all(r["roots_agree"] for r in rows) and alive == [1, 1] else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp, rc = Path(tempfile.mkdtemp(prefix="antientropy_bench-")), 2
    try:
        rc = run(args, tmp)
    except (RuntimeError, OSError, ValueError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    finally:
        stop_all()
        if rc == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
