"""`kvs export` and `kvs import` across the nodes of a real cluster, as subprocesses: a prefix
exported from node1, deleted, a schema put on the prefix, the file imported through node2 (one
line breaks the schema: named, exit 3, the others written with their meta), node3 then holds
the same keys, and a second identical run writes nothing (all skipped but the refused line)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from .helpers import KVS, Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

START_DEADLINE_S = 180.0
DEADLINE_S = 60.0


def kvs(launch: Launch, *args: str, endpoints: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KVS_TOKEN": launch.token, "KVS_ENDPOINTS": endpoints}
    return subprocess.run([str(KVS), *args], capture_output=True, text=True, env=env, timeout=300)


def listing(launch: Launch, index: int, prefix: str) -> dict[str, tuple]:
    with launch.client(index) as c:
        page = c.get("/api/v1/kv/", params={"prefix": prefix, "limit": 1000}).json()
    return {i["key"]: (i["value"], i["owner"], i["group"], i["mode"]) for i in page["items"]}


def test_export_import_round_trip_across_nodes(request, tmp_path: Path) -> None:
    with kvs_up(tmp_path, nodes=3, start_deadline=START_DEADLINE_S) as launch:
        with logs_on_failure(request, launch):
            round_trip(launch, tmp_path)


def round_trip(launch: Launch, tmp_path: Path) -> None:
    with launch.client(1) as c:
        wait_for(lambda: all_normal(launch), timeout=DEADLINE_S, what="normal nodes")
        for n in range(60):
            assert c.put(f"/api/v1/kv/src/k{n:02d}", json={"n": n, "big": 2**70}).status_code == 201
        assert c.put("/api/v1/kv/src/odd", json="a string").status_code == 201
        assert c.put("/api/v1/kv/other/x", json=1).status_code == 201
        assert c.put("/api/v1/meta/src/k07", json={"mode": "cdwr-dwr---r"}).status_code == 200
    exported = tmp_path / "src.jsonl"
    out = kvs(launch, "export", "--prefix", "src/", "--out", str(exported),
              endpoints=launch.node_url(1))  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [line["key"] for line in lines] == [*(f"src/k{n:02d}" for n in range(60)), "src/odd"]
    odd_line = len(lines)
    original = listing(launch, 1, "src/")

    with launch.client(1) as c:
        assert c.delete("/api/v1/kv/src?recurse=1").json() == {"deleted": 61}
        schema = {"type": "object", "required": ["n"]}
        assert c.put("/api/v1/schemas/src/", json=schema).status_code in (200, 201)
    with launch.client(2) as c:
        wait_for(lambda: c.get("/api/v1/schemas/src/").status_code == 200
                 and c.get("/api/v1/kv/src/k59").status_code == 404,
                 timeout=DEADLINE_S, what="the delete and the schema on node2")  # fmt: skip

    first = kvs(launch, "import", str(exported), endpoints=launch.node_url(2))
    assert first.returncode == 3, first.stderr
    assert "written 60, skipped 0, refused 1" in first.stdout
    assert f"line {odd_line}: " in first.stderr and "schema" in first.stderr
    wanted = {key: meta for key, meta in original.items() if key != "src/odd"}
    wait_for(lambda: listing(launch, 3, "src/") == wanted, timeout=DEADLINE_S,
             what="node3 to hold the imported keys")  # fmt: skip
    assert listing(launch, 2, "src/")["src/k07"][3] == 0xF71  # cdwr-dwr---r, as exported

    with launch.client(2) as c:
        revision = c.get("/api/v1/status").json()["revision"]
    # The second run, with an unreachable first endpoint: the next one is used.
    again = kvs(launch, "import", str(exported), "--json",
                endpoints=f"http://127.0.0.1:1,{launch.node_url(2)}")  # fmt: skip
    assert again.returncode == 3, again.stderr
    report = json.loads(again.stdout)
    assert (report["written"], report["skipped"], report["refused"]) == (0, 60, 1)
    with launch.client(2) as c:
        assert c.get("/api/v1/status").json()["revision"] == revision  # nothing changed

    launch.token = "kvs_wrong"
    bad = kvs(launch, "import", str(exported), endpoints=launch.node_url(2))
    assert bad.returncode == 4 and "401" in bad.stderr, bad.stderr


def all_normal(launch: Launch) -> bool:
    try:
        modes = [httpx.get(f"{launch.node_url(i)}/health", timeout=5).json()["mode"]
                 for i in (1, 2, 3)]  # fmt: skip
    except (httpx.HTTPError, ValueError):
        return False
    return modes == ["normal"] * 3
