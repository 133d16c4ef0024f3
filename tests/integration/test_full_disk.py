"""A full disk on one node: node2's data directory is a small tmpfs, filled by a filler file and
then by large values. Its writes must answer 507 `insufficient_storage` (never a 500), its reads
keep working, its SQLite file stays intact with every acknowledged write in it, and once the
filler is removed it takes writes again without a restart and catches up with its peers."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.disk import MountFailed, fill, tmpfs
from tests.faults.workload import merkle_converged, nodes_of

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DISK_MB = 32
RESERVE_BYTES = 3 << 20  # left free by the filler: the large values fill the rest
VALUE_HEX = 64 << 10  # 128 KiB of random hex per value: no compression shrinks it
START_DEADLINE_S = 180.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """node2's data directory, on a tmpfs of DISK_MB MiB (unmounted afterwards, always)."""
    try:
        with tmpfs(tmp_path / "cluster" / "node2", size_mb=DISK_MB) as mount:
            yield mount
    except MountFailed as error:  # a failure under CI=true (tests/plugins/no_skips_under_ci.py)
        pytest.skip(str(error))


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, small_disk: Path) -> Iterator[Launch]:
    env = {"KVS_AUTH_ENABLED": "false", "KVS_THROTTLE_ANON": ""}
    with kvs_up(tmp_path, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        with logs_on_failure(request, launched):
            yield launched


def integrity(database: Path) -> str:
    """SQLite's own check of `database`, opened read-only beside the running node."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_full_disk_answers_507_keeps_reads_and_recovers_when_space_returns(
    cluster: Launch, small_disk: Path
):
    urls = [cluster.node_url(i) for i in (1, 2, 3)]
    wait_for(lambda: all(serving(u) for u in urls), timeout=120, what="three nodes serving")
    node2 = httpx.Client(base_url=urls[1], timeout=30)
    acknowledged: dict[str, str] = {}  # key → version, on any node
    before = node2.put("/api/v1/kv/disk/before", json="written before the disk filled")
    assert before.status_code == 201
    acknowledged["disk/before"] = before.json()["version"]

    filler = small_disk / "filler"
    fill(filler, leave=RESERVE_BYTES)
    statuses: list[int] = []
    refusal = None
    for n in range(4 * RESERVE_BYTES // VALUE_HEX):
        answer = node2.put(f"/api/v1/kv/disk/big/{n}", json=secrets.token_hex(VALUE_HEX))
        statuses.append(answer.status_code)
        if answer.status_code in (200, 201):
            acknowledged[f"disk/big/{n}"] = answer.json()["version"]
        elif answer.status_code == 507:
            refusal = answer
            break
    assert refusal is not None, f"the disk never filled: {statuses}"
    assert set(statuses) <= {201, 507}, statuses
    body = refusal.json()
    assert body["code"] == "insufficient_storage", body
    assert refusal.headers["content-type"].startswith("application/json")

    # Still full: more writes are refused alike, never a 500; reads and health answer. The disk
    # is first filled to less than one value, since what the refused write had taken may be free
    # again. A write may still fit where SQLite reuses pages that a checkpoint freed: it is then
    # acknowledged, and checked like the others.
    fill(small_disk / "filler-more", leave=VALUE_HEX)
    again: list[int] = []
    for n in range(20):
        answer = node2.put(f"/api/v1/kv/disk/more/{n}", json=secrets.token_hex(VALUE_HEX))
        again.append(answer.status_code)
        if answer.status_code in (200, 201):
            acknowledged[f"disk/more/{n}"] = answer.json()["version"]
        elif answer.status_code == 507:
            assert answer.json()["code"] == "insufficient_storage"
            if again.count(507) == 3:
                break
    assert again.count(507) == 3 and set(again) <= {201, 507}, again
    for key, version in acknowledged.items():
        answer = node2.get(f"/api/v1/kv/{key}")
        assert answer.status_code == 200 and answer.json()["version"] == version, key
    assert node2.get("/health").status_code == 200
    # Writes on the other nodes go on; node2 cannot store them yet.
    elsewhere = httpx.put(f"{urls[0]}/api/v1/kv/disk/elsewhere", json="node1, meanwhile")
    assert elsewhere.status_code == 201
    acknowledged["disk/elsewhere"] = elsewhere.json()["version"]
    assert integrity(small_disk / "kvsite.sqlite3") == "ok"

    # Space returns: writes succeed again without a restart, and node2 catches up.
    restarts = cluster.output().count("kvs: node2 restarted")
    filler.unlink()
    (small_disk / "filler-more").unlink()
    after = wait_for(
        lambda: (
            answer
            if (answer := node2.put("/api/v1/kv/disk/after", json="space is back")).status_code
            == 201
            else None
        ),
        timeout=30,
        what="node2 to take writes again",
    )
    acknowledged["disk/after"] = after.json()["version"]
    took, converged = merkle_converged(nodes_of(urls), None, timeout=90)
    assert converged, f"Merkle roots still differ {took:.0f} s after space returned"
    for url in urls:
        for key, version in acknowledged.items():
            top = httpx.get(f"{url}/api/v1/history/{key}", timeout=30).json()["versions"][0]
            assert top["version"] == version, (url, key)
    assert cluster.output().count("kvs: node2 restarted") == restarts
    assert integrity(small_disk / "kvsite.sqlite3") == "ok"
    print(
        f"\nnode2 took {sum(key.startswith('disk/big/') for key in acknowledged)} large writes "
        "before answering 507; "
        f"roots equal {took:.1f} s after space returned"
    )


def serving(url: str) -> bool:
    """Whether the node at `url` takes writes: healthy and done syncing."""
    try:
        return httpx.get(f"{url}/health", timeout=5).json().get("mode") == "normal"
    except (httpx.HTTPError, ValueError):
        return False
