"""The audit trail of a real two-node cluster, two web workers per node: writes that arrive at
both workers of node1 at once make one linear chain (consecutive seqs, verify holds); the
replicated copies on node2 are not audited there; the key file sits in the node's data directory
with mode 0600; and an event edited in node1's database file makes verify fail at it."""

from __future__ import annotations

import os
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from kvsite.cli import DATABASE_URL_FILE

from .helpers import kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 150.0
REPLICATE_DEADLINE_S = 60.0
WRITERS, WRITES = 8, 25


def trail(url: str, token: str, **query) -> list[dict]:
    """Every event of the node's trail (all pages)."""
    headers = {"Authorization": f"Bearer {token}"}
    events, after = [], 0
    while True:
        params = {"after": after, "limit": 500, **query}
        body = httpx.get(f"{url}/api/v1/audit", params=params, headers=headers, timeout=30).json()
        events += body["events"]
        if body["next"] is None:
            return events
        after = body["next"]


def edit_node1(launch, sql: str, *params) -> None:
    """Run `sql` on node1's database itself (its SQLite file, or its PostgreSQL database)."""
    url_file = launch.data / DATABASE_URL_FILE
    if url_file.exists():
        import psycopg

        url = url_file.read_text().strip().replace("{node}", "node1")
        with psycopg.connect(url) as db:
            db.execute(sql, params)
        return
    with sqlite3.connect(launch.data / "node1" / "kvsite.sqlite3", timeout=30) as db:
        db.execute(sql.replace("%s", "?"), params)


def verify(url: str, token: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{url}/api/v1/audit/verify", headers=headers, timeout=60).json()


def test_concurrent_writes_on_every_worker_make_one_verifiable_chain(tmp_path, request):
    with kvs_up(
        tmp_path, nodes=2, args=["--workers", "2"], start_deadline=START_DEADLINE_S
    ) as launch:
        with logs_on_failure(request, launch):
            node1, node2, token = launch.node_url(1), launch.node_url(2), launch.token
            headers = {"Authorization": f"Bearer {token}"}

            def writer(w: int) -> int:
                done = 0
                for i in range(WRITES):
                    # A new connection per request, so that the kernel spreads them over both
                    # web workers.
                    answer = httpx.put(f"{node1}/api/v1/kv/audit/{w}/{i}", json=i, headers=headers,
                                       timeout=30)  # fmt: skip
                    assert answer.status_code == 201, answer.text
                    done += 1
                if w % 2 == 0:
                    user = {"username": f"user{w}", "password": "a-long-password-1"}
                    assert httpx.post(f"{node1}/api/v1/users", json=user, headers=headers,
                                      timeout=30).status_code == 201  # fmt: skip
                return done

            with ThreadPoolExecutor(WRITERS) as pool:
                assert sum(pool.map(writer, range(WRITERS))) == WRITERS * WRITES

            events = trail(node1, token)
            seqs = [e["seq"] for e in events]
            assert seqs == list(range(1, len(seqs) + 1)), "the chain forked or has gaps"
            puts = [
                e for e in events if e["action"] == "kv.put" and e["target"].startswith("audit/")
            ]
            assert len(puts) == WRITERS * WRITES
            assert {e["remote"] for e in puts} == {"127.0.0.1"}
            assert {e["actor"] for e in puts} == {"root"}
            created = [e["target"] for e in events if e["action"] == "user.create" and e["actor"]]
            assert sorted(created) == sorted(f"user{w}" for w in range(0, WRITERS, 2))
            verdict = verify(node1, token)
            assert verdict["ok"] is True and verdict["checked"] == len(events), verdict
            joined = {e["target"] for e in events if e["action"] == "member.join"}
            assert {"node1", "node2"} <= joined, joined  # written by the Celery worker's gossip

            # node2 holds the keys by replication; its trail has none of those writes.
            last = f"{node2}/api/v1/kv/audit/{WRITERS - 1}/{WRITES - 1}"
            wait_for(lambda: httpx.get(last, headers=headers, timeout=10).status_code == 200,
                     timeout=REPLICATE_DEADLINE_S, what="node2 to hold node1's writes")  # fmt: skip
            assert trail(node2, token, action="kv.put", prefix="audit/") == []
            assert trail(node2, token, action="user.create") == []
            assert verify(node2, token)["ok"] is True

            key_file = launch.data / "node1" / "audit_key"
            assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

            victim = puts[len(puts) // 2]["seq"]
            edit_node1(
                launch, "UPDATE audit_auditevent SET actor = 'mallory' WHERE seq = %s", victim
            )
            verdict = verify(node1, token)
            assert verdict["ok"] is False and verdict["first_bad"] == victim, verdict
