"""Backup, restore, export and import of 100,000 keys on one node.

    .venv/bin/python bench/backup_bench.py                 # 100,000 keys, 3 runs
    .venv/bin/python bench/backup_bench.py --keys 20000 --runs 1 --json out.json

Per run: a fresh one-node cluster (`kvs up --nodes 1`, scheduled backups off); `kvs import` of
--keys JSON lines (values ~60 bytes) through the API (keys/s: the target is >= 5,000), then the
same file again (all skipped); `kvs export` of the prefix; `kvs backup --data DIR/node1 --out F`
while the node runs; the cluster is stopped and `kvs restore F --data EMPTY/node1` into an empty
directory, then `kvs backup` of the restored node must give the same Merkle root and counts. Every
command is the real CLI in a subprocess, timed from start to exit, with its peak RSS sampled.
The machine is shared: the table gives min-max over the runs and the load average around them.
Exit status: 0 ok, 1 a check failed, 2 the node did not start.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from replication_bench import ROOT, launch, machine_info, stop_all, wait_ready

KVS = ROOT / ".venv" / "bin" / "kvs"
TOKEN = "kvs_bench_backup_token_0123456789abcdef"


def timed(argv: list[str], **kwargs) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run `argv` to its end: seconds, peak RSS (bytes, the process and its children), result."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )
    peak = 0
    while proc.poll() is None:
        try:
            me = psutil.Process(proc.pid)
            rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    result = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
    if result.returncode not in (0,):
        raise RuntimeError(
            f"{' '.join(argv[:3])} exited {result.returncode}: {result.stderr[-2000:]}"
        )
    return seconds, peak, result


def lines_file(path: Path, keys: int) -> Path:
    with path.open("w") as out:
        for n in range(keys):
            value = {"n": n, "name": f"item-{n}", "tags": ["a", "b"], "pad": "x" * 16}
            out.write(json.dumps({"key": f"bench/imp/{n:07d}", "value": value}) + "\n")
    return path


def one_run(keys: int, tmp: Path) -> dict:
    data = tmp / "cluster"
    env = {"KVS_BOOTSTRAP_TOKEN": TOKEN, "KVS_BACKUP_SCHEDULE": ""}
    urls, proc = launch(1, data, env)
    client = {**os.environ, "KVS_ENDPOINTS": urls[0], "KVS_TOKEN": TOKEN}
    row: dict = {"keys": keys, "load_before": round(os.getloadavg()[0], 2)}
    try:
        wait_ready(urls, TOKEN, proc, 1)
        source = lines_file(tmp / "lines.jsonl", keys)
        s, rss, result = timed([str(KVS), "import", str(source), "--json"], env=client)
        report = json.loads(result.stdout)
        assert report["written"] == keys and report["refused"] == 0, report
        row.update(import_s=s, import_keys_s=keys / s, import_rss=rss)
        s, _, result = timed([str(KVS), "import", str(source), "--json"], env=client)
        assert json.loads(result.stdout)["skipped"] == keys
        row.update(reimport_s=s, reimport_keys_s=keys / s)
        exported = tmp / "export.jsonl"
        s, rss, _ = timed(
            [str(KVS), "export", "--prefix", "bench/", "--out", str(exported)], env=client
        )
        assert sum(1 for _ in exported.open()) == keys
        row.update(export_s=s, export_keys_s=keys / s, export_rss=rss)
        backup = tmp / "node1.jsonl.zst"
        s, _, result = timed(
            [str(KVS), "backup", "--data", str(data / "node1"), "--out", str(backup), "--json"]
        )
        made = json.loads(result.stdout)
        row.update(backup_s=s, backup_bytes=backup.stat().st_size)
    finally:
        stop_all()
    target = tmp / "restored" / "node1"
    s, rss, result = timed(
        [str(KVS), "restore", str(backup), "--data", str(target), "--json"],
        env={k: v for k, v in os.environ.items() if k != "KVS_NODE_ID"},
    )
    restored = json.loads(result.stdout)
    row.update(restore_s=s, restore_rss=rss)
    again_file = tmp / "again.jsonl.zst"
    _, _, result = timed(
        [str(KVS), "backup", "--data", str(target), "--out", str(again_file), "--json"]
    )
    again = json.loads(result.stdout)
    row["root_ok"] = made["merkle_root"] == restored["merkle_root"] == again["merkle_root"]
    row["keys_ok"] = made["keys"] == again["keys"] >= keys
    row["load_after"] = round(os.getloadavg()[0], 2)
    return row


def span(rows: list[dict], name: str, fmt: str = "{:,.2f}") -> str:
    values = [r[name] for r in rows]
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}–{high}"


def print_table(rows: list[dict]) -> None:
    mib = "{:,.1f}"

    def rss(name: str) -> str:
        return span([{**r, "m": r[name] / 2**20} for r in rows], "m", mib) + " MiB"

    def rate(name: str) -> str:
        return span(rows, name, "{:,.0f}") + " keys/s"

    file_mib = span([{**r, "m": r["backup_bytes"] / 2**20} for r in rows], "m", mib)
    table = [
        ("import (all written)", span(rows, "import_s"), rate("import_keys_s"), rss("import_rss")),
        ("import again (all skipped)", span(rows, "reimport_s"), rate("reimport_keys_s"), ""),
        ("export", span(rows, "export_s"), rate("export_keys_s"), rss("export_rss")),
        ("backup (node running)", span(rows, "backup_s"), f"{file_mib} MiB file", ""),
        ("restore (into an empty dir)", span(rows, "restore_s"), "", rss("restore_rss")),
    ]
    print(f"| {rows[0]['keys']:,} keys | seconds | rate / size | peak RSS |")
    print("|---|---|---|---|")
    for label, *cells in table:
        print(f"| {label} | " + " | ".join(cells) + " |")
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    print(f"load average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="also write the rows and machine info to this file")
    args = parser.parse_args(argv)
    rows = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kvs-backup-bench-") as tmp:
            try:
                rows.append(one_run(args.keys, Path(tmp)))
            except RuntimeError as error:
                print(f"run {run + 1}: {error}", file=sys.stderr)
                return 2
            print(f"run {run + 1}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1))
    return 0 if all(r["root_ok"] and r["keys_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
