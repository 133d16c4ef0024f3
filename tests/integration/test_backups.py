"""Backups and restore on real nodes, through the real `kvs` command line.

A three-node cluster takes writes on node1 and node2 while `kvs backup --data DIR/node1` runs;
the file is consistent (its revision and Merkle root match its content), `kvs restore` refuses
it while node1 runs and refuses a damaged copy before writing anything; restored into an empty
data directory and started on its own, the node serves exactly the backup's keys, versions and
Merkle root. Then node1 is lost for real: the cluster is stopped, node1's directory is restored
from the backup, the cluster started again, and node1 catches up with what was written after the
backup through anti-entropy. The beat schedule (every minute here) takes backups by itself.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from backups.fileformat import backup_lines
from backups.restore import backup_verify

from .helpers import KVS, Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

START_DEADLINE_S = 180.0
READY_DEADLINE_S = 90.0
CONVERGE_DEADLINE_S = 120.0
SCHEDULE_DEADLINE_S = 150.0  # the next minute boundary after beat starts, on a loaded machine
TIMEOUT_S = 30.0


def client(url: str, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT_S, trust_env=False)


def status(url: str, token: str) -> dict | None:
    try:
        with client(url, token) as c:
            answer = c.get("/api/v1/status")
        return answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def wait_normal(launch: Launch, token: str) -> None:
    for index in range(1, launch.nodes + 1):
        url = launch.node_url(index)
        wait_for(
            lambda url=url: (s := status(url, token)) and s["mode"] == "normal",
            timeout=READY_DEADLINE_S,
            what=f"{url} to be normal",
        )


def kvs(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `kvs` command line to its end."""
    return subprocess.run([str(KVS), *args], capture_output=True, text=True, timeout=600, env=env)


def live_versions(url: str, token: str) -> dict[str, str]:
    """key -> version of every live key the node lists (all pages)."""
    found, cursor = {}, None
    with client(url, token) as c:
        while True:
            params = {"limit": 1000, "keys": 1, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/kv/", params=params).json()
            found.update({item["key"]: item["version"] for item in page["items"]})
            cursor = page["next_cursor"]
            if not cursor:
                return found


def backup_entries(path: Path) -> list[dict]:
    return [record for _, record in backup_lines(path) if record["kind"] == "entry"]


class Writers:
    """Threads writing load/<n> to the given nodes until stopped."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.stop, self.count = threading.Event(), [0] * len(urls)
        self.threads = [
            threading.Thread(target=self._run, args=(i, url, token), daemon=True)
            for i, url in enumerate(urls)
        ]

    def _run(self, index: int, url: str, token: str) -> None:
        with client(url, token) as c:
            while not self.stop.is_set():
                n = self.count[index]
                try:
                    c.put(f"/api/v1/kv/load/{index}/{n % 200}", json={"n": n})
                except httpx.HTTPError:
                    continue
                self.count[index] += 1

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def seed(launch: Launch, token: str) -> None:
    """Keys with history and a tombstone, a user and a token, all on node1."""
    with client(launch.node_url(1), token) as c:
        for n in range(300):
            assert c.put(f"/api/v1/kv/app/k{n:03d}", json={"n": n}).status_code == 201
        for n in range(0, 300, 10):
            assert c.put(f"/api/v1/kv/app/k{n:03d}", json={"n": n, "v": 2}).status_code == 200
        assert c.delete("/api/v1/kv/app/k001").status_code == 204
        user = {"username": "alice", "password": "alice-password-1"}
        assert c.post("/api/v1/users", json=user).status_code == 201
        made = {"user": "alice", "scopes": ["read"], "name": "ci"}
        assert c.post("/api/v1/tokens", json=made).status_code == 201


def test_backup_under_load_restore_and_catch_up(request, tmp_path: Path) -> None:
    env = {"KVS_BACKUP_SCHEDULE": "* * * * *"}
    backup = tmp_path / "node1.jsonl.zst"
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launch:
        with logs_on_failure(request, launch):
            token, node1_dir = launch.token, launch.data / "node1"
            wait_normal(launch, token)
            seed(launch, token)
            header, entries = back_up_under_load(launch, token, node1_dir, backup)
            refusals(backup, node1_dir, tmp_path)
            scheduled_backup_appears(launch, token)
            with client(launch.node_url(2), token) as c:  # after the backup: must come back
                for n in range(20):
                    assert c.put(f"/api/v1/kv/after/k{n}", json={"n": n}).status_code == 201
            wait_for(lambda: converged(launch, token), timeout=CONVERGE_DEADLINE_S,
                     what="the three nodes to agree")  # fmt: skip
            final = live_versions(launch.node_url(2), token)
            assert {f"after/k{n}" for n in range(20)} <= final.keys()

    restored_alone_serves_the_backup(request, tmp_path, backup, header, entries, token)

    # node1 lost: its data is restored from the backup while the cluster is down; once the
    # cluster runs again, node1 catches up through anti-entropy.
    done = kvs("restore", str(backup), "--data", str(node1_dir), "--force")
    assert done.returncode == 0, done.stderr
    env = {**env, "KVS_BOOTSTRAP_TOKEN": token}
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launch:
        with logs_on_failure(request, launch):
            wait_for(lambda: live_versions_or_none(launch.node_url(1), token) == final,
                     timeout=CONVERGE_DEADLINE_S, what="node1 to catch up")  # fmt: skip
            wait_for(lambda: converged(launch, token), timeout=CONVERGE_DEADLINE_S,
                     what="the three nodes to agree")  # fmt: skip


def back_up_under_load(launch: Launch, token: str, node1_dir: Path, backup: Path):
    with Writers([launch.node_url(1), launch.node_url(2)], token) as writers:
        wait_for(lambda: min(writers.count) >= 20, timeout=60, what="the writers to write")
        made = kvs("backup", "--data", str(node1_dir), "--out", str(backup), "--json")
        before = list(writers.count)
        wait_for(lambda: min(c - b for c, b in zip(writers.count, before, strict=True)) >= 10,
                 timeout=60, what="writes after the backup")  # fmt: skip
    assert made.returncode == 0, made.stderr
    # Consistent: the snapshot's revision and Merkle root are those of its content.
    verified = backup_verify(backup)
    header, entries = verified.header, backup_entries(backup)
    assert max(e["revision"] for e in entries) == header["revision"]
    assert verified.merkle_root == header["merkle_root"] and header["node"] == "node1"
    assert verified.counts["history"] >= 30 and verified.counts["user"] == 2
    assert verified.counts["token"] == 2 and verified.counts["member"] == 3
    assert any(e["key"].startswith("load/1/") for e in entries)  # node2's writes, replicated
    assert any(e["key"] == "app/k001" and e["deleted"] for e in entries)
    return header, entries


def refusals(backup: Path, node1_dir: Path, tmp_path: Path) -> None:
    """Refused while node1 runs; a damaged copy refused before anything is written."""
    running = kvs("restore", str(backup), "--data", str(node1_dir), "--force")
    assert running.returncode != 0 and "is running" in running.stderr, running.stderr
    damaged, empty = tmp_path / "damaged.jsonl.zst", tmp_path / "empty" / "node1"
    damaged.write_bytes(backup.read_bytes()[:-200])
    refused = kvs("restore", str(damaged), "--data", str(empty))
    assert refused.returncode != 0 and "nothing was restored" in refused.stderr, refused.stderr
    assert not (empty / "kvsite.sqlite3").exists()


def scheduled_backup_appears(launch: Launch, token: str) -> None:
    """The beat schedule (every minute here) takes backups by itself: one of the seeded store
    appears within a minute or two (an earlier one may predate the seeding)."""

    def seeded_backup() -> dict | None:
        listed = c.get("/api/v1/backups").json()
        return next((b for b in listed if b["keys"] >= 299), None)

    with client(launch.node_url(1), token) as c:
        found = wait_for(seeded_backup, timeout=SCHEDULE_DEADLINE_S, what="a scheduled backup")
        assert len(found["sha256"]) == 64 and found["node"] == "node1"
        download = c.get(f"/api/v1/backups/{found['id']}")
        assert download.status_code == 200 and len(download.content) == found["size"]


def restored_alone_serves_the_backup(request, tmp_path, backup, header, entries, token) -> None:
    """Restored into an empty directory and started on its own (its own cluster secret, so the
    old cluster refuses it), the node serves exactly the backup's keys, versions and root."""
    solo_tmp = tmp_path / "solo"
    solo_tmp.mkdir()
    restored = kvs("restore", str(backup), "--data", str(solo_tmp / "cluster" / "node1"))
    assert restored.returncode == 0, restored.stderr
    assert header["merkle_root"] in restored.stdout
    env = {"KVS_BOOTSTRAP_TOKEN": token, "KVS_BACKUP_SCHEDULE": ""}
    with kvs_up(solo_tmp, nodes=1, env=env, start_deadline=START_DEADLINE_S) as solo:
        with logs_on_failure(request, solo):
            state = status(solo.url, token)
            assert state["merkle_root"] == header["merkle_root"]
            assert state["revision"] == header["revision"] and state["node_id"] == "node1"
            live = {e["key"]: e["version"] for e in entries
                    if not e["deleted"] and not e["key"].startswith("_")}  # fmt: skip
            assert live_versions(solo.url, token) == live
            with client(solo.url, "kvs_no_such_token") as c:
                assert c.get("/api/v1/status").status_code == 401


def live_versions_or_none(url: str, token: str) -> dict[str, str] | None:
    try:
        return live_versions(url, token)
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def converged(launch: Launch, token: str) -> bool:
    roots = [status(launch.node_url(i), token) for i in range(1, launch.nodes + 1)]
    return all(roots) and len({r["merkle_root"] for r in roots}) == 1
