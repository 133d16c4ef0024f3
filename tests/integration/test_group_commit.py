"""Group commit on a real node: many concurrent writers across its two web workers, with mixed
successes and failures (cas, ACL, schema). Each writer gets exactly its own answer, the written
revisions are consecutive and unique, the Merkle root equals one recomputed from the stored
rows, and a watcher sees every change once, in revision order."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets

from kv.merkle import record_digest

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 120.0
WATCH_DEADLINE_S = 60.0
WRITERS = 32
OK, CAS, ACL, SCHEMA = 160, 40, 40, 40


def api(launch: Launch, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=launch.node_url(1),
        headers={"Authorization": f"Bearer {token or launch.token}"},
        timeout=30.0,
    )


def writer_token(launch: Launch) -> str:
    with api(launch) as root:
        assert root.post("/api/v1/users", json={"username": "writer"}).status_code == 201
        issued = root.post("/api/v1/tokens", json={"user": "writer", "scopes": ["read", "write"]})
        assert issued.status_code == 201, issued.text
        rule = root.put("/api/v1/acl/gc/locked/", json={"mode": "cdwr--------"})
        assert rule.status_code in (200, 201), rule.text
        schema = root.put("/api/v1/schemas/gc/typed/", json={"type": "integer"})
        assert schema.status_code in (200, 201), schema.text
    return issued.json()["token"]


def stored_rows(launch: Launch) -> list[tuple[str, str, int, bool, str]]:
    """(key, version, hlc, deleted, digest) of every entry of node1, read from its database."""
    url_file = launch.data / "database_url"
    query = "SELECT key, version, hlc, deleted, digest FROM kv_entry"
    if url_file.exists():  # under scripts/with-postgres
        import psycopg

        with psycopg.connect(url_file.read_text().strip().replace("{node}", "node1")) as conn:
            return [(k, str(v), h, d, g) for k, v, h, d, g in conn.execute(query)]
    with sqlite3.connect(f"file:{launch.data / 'node1' / 'kvsite.sqlite3'}?mode=ro", uri=True) as c:
        return [(k, str(uuid.UUID(v)), h, bool(d), g) for k, v, h, d, g in c.execute(query)]


def test_concurrent_writers_each_get_their_own_answer_in_one_consecutive_run(
    tmp_path, request
) -> None:
    with kvs_up(tmp_path, nodes=1, start_deadline=START_DEADLINE_S) as launch:
        with logs_on_failure(request, launch):
            token = writer_token(launch)
            with api(launch, token) as writer:
                cas_keys = {}
                for n in range(CAS):
                    answer = writer.put(f"/api/v1/kv/gc/cas/{n}", json=0)
                    assert answer.status_code == 201, answer.text
                    cas_keys[n] = answer.json()["version"]
            scenario(launch, token, cas_keys)


def scenario(launch: Launch, token: str, cas_keys: dict[int, str]) -> None:
    jobs = [("ok", n) for n in range(OK)] + [("cas", n) for n in range(CAS)]
    jobs += [("acl", n) for n in range(ACL)] + [("schema", n) for n in range(SCHEMA)]
    jobs.sort(key=lambda job: hash((job, "mix")))  # interleaved

    def write(job: tuple[str, int]) -> tuple[tuple[str, int], int, dict]:
        kind, n = job
        with httpx.Client(base_url=launch.node_url(1), timeout=60.0) as client:  # own connection
            headers = {"Authorization": f"Bearer {token}"}
            if kind == "ok":
                answer = client.put(f"/api/v1/kv/gc/ok/{n}", json=n, headers=headers)
            elif kind == "cas":  # half stale, half right: only the right ones win
                version = cas_keys[n] if n % 2 else str(uuid.uuid4())
                answer = client.put(
                    f"/api/v1/kv/gc/cas/{n}", json=1, params={"cas": version}, headers=headers
                )
            elif kind == "acl":
                answer = client.put(f"/api/v1/kv/gc/locked/{n}", json=n, headers=headers)
            else:
                answer = client.put(f"/api/v1/kv/gc/typed/{n}", json="text", headers=headers)
        return job, answer.status_code, answer.json()

    with api(launch) as root:
        base = root.get("/api/v1/status").json()["revision"]

    async def watched(count: int) -> list[dict]:
        url = launch.node_url(1).replace("http://", "ws://") + "/ws/v1/watch?prefix=gc/"
        headers = {"Authorization": f"Bearer {launch.token}"}
        events = []
        async with websockets.connect(url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            storm = asyncio.get_running_loop().run_in_executor(None, run_storm)
            async with asyncio.timeout(WATCH_DEADLINE_S):
                while len(events) < count:
                    events.append(json.loads(await ws.recv()))
            answers = await storm
            try:  # and nothing more
                async with asyncio.timeout(1.0):
                    events.append(json.loads(await ws.recv()))
            except TimeoutError:
                pass
        return events, answers

    def run_storm():
        with ThreadPoolExecutor(WRITERS) as pool:
            return list(pool.map(write, jobs))

    events, answers = asyncio.run(watched(OK + CAS // 2))

    revisions = []
    for (kind, n), status, body in answers:
        if kind == "ok":
            assert status == 201 and body["key"] == f"gc/ok/{n}", body
            revisions.append(body["revision"])
        elif kind == "cas" and n % 2:
            assert status == 200 and body["key"] == f"gc/cas/{n}", body
            revisions.append(body["revision"])
        elif kind == "cas":
            assert status == 409 and body["version"] == cas_keys[n], body
        elif kind == "acl":
            assert status == 403 and "gc/locked/" in body["detail"], body
        else:
            assert status == 400 and body["code"] == "schema_violation", body
    assert sorted(revisions) == list(range(base + 1, base + 1 + OK + CAS // 2))

    assert len(events) == OK + CAS // 2  # every change once, nothing more
    assert [e["revision"] for e in events] == sorted(revisions)
    assert {e["key"] for e in events} == {f"gc/ok/{n}" for n in range(OK)} | {
        f"gc/cas/{n}" for n in range(1, CAS, 2)
    }

    with api(launch) as root:
        state = root.get("/api/v1/status").json()
    assert state["revision"] == base + OK + CAS // 2
    root_hash = 0
    for key, version, hlc, deleted, digest in stored_rows(launch):
        assert digest == record_digest(key=key, version=version, hlc=hlc, deleted=deleted)
        root_hash ^= int(digest, 16)
    assert state["merkle_root"] == f"{root_hash:032x}"


def test_a_transaction_reaches_a_peers_watcher_as_one_batch(tmp_path, request) -> None:
    keys = [f"tx/{n}" for n in range(6)]

    async def watched(launch: Launch) -> list[dict]:
        url = launch.node_url(2).replace("http://", "ws://") + "/ws/v1/watch?prefix=tx/"
        headers = {"Authorization": f"Bearer {launch.token}"}
        async with websockets.connect(url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            with api(launch) as node1:
                answer = node1.post(
                    "/api/v1/txn",
                    json={
                        "compare": [{"key": "tx/0", "absent": True}],
                        "success": [{"op": "put", "key": key, "value": key} for key in keys],
                    },
                )
            assert answer.status_code == 200 and answer.json()["succeeded"], answer.text
            revisions = [result["revision"] for result in answer.json()["results"]]
            assert revisions == list(range(revisions[0], revisions[0] + len(keys)))
            events = []
            async with asyncio.timeout(WATCH_DEADLINE_S):
                while len(events) < len(keys):
                    events.append(json.loads(await ws.recv()))
        return events

    with kvs_up(tmp_path, nodes=2, start_deadline=START_DEADLINE_S) as launch:
        with logs_on_failure(request, launch):
            wait_until_joined(launch)
            events = asyncio.run(watched(launch))
    assert [e["key"] for e in events] == keys and [e["value"] for e in events] == keys
    on_node2 = [e["revision"] for e in events]  # applied on node2 in one transaction too
    assert on_node2 == list(range(on_node2[0], on_node2[0] + len(keys)))


def wait_until_joined(launch: Launch) -> None:
    def joined() -> bool:
        try:
            with api(launch) as node1:
                members = node1.get("/api/v1/cluster/members").json()
            health = httpx.get(f"{launch.node_url(2)}/health", timeout=2.0).json()
        except (httpx.HTTPError, ValueError):
            return False
        alive = sum(m["status"] == "alive" for m in members)
        return alive == 2 and health.get("mode") == "normal"

    wait_for(joined, timeout=START_DEADLINE_S, interval=0.25, what="node2 to join and sync")
