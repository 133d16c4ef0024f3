"""A real node over HTTP: a backtracking schema pattern and wrong-password logins cannot burn it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .helpers import Launch, kvs_up, logs_on_failure

pytestmark = pytest.mark.integration


@pytest.fixture
def launch(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Launch]:
    # Windows of a day: the test cannot straddle the end of one (a minute's could).
    env = {"KVS_LOGIN_THROTTLE_USER": "5/day"}
    with kvs_up(tmp_path, nodes=1, env=env) as launched, logs_on_failure(request, launched):
        yield launched


@pytest.mark.timeout(180)
def test_a_node_is_not_stalled_by_patterns_or_wrong_passwords(launch: Launch) -> None:
    auth = {"Authorization": f"Bearer {launch.token}"}
    with httpx.Client(base_url=launch.url, headers=auth, timeout=30.0) as client:
        schema = {"type": "string", "pattern": "^(a+)+$"}
        assert client.put("/api/v1/schemas/re/", json=schema).status_code == 201
        started = time.monotonic()
        answer = client.put("/api/v1/kv/re/x", json="a" * 40 + "!")
        assert answer.status_code == 400 and answer.json()["code"] == "schema_violation"
        assert time.monotonic() - started < 5.0

        user = {"username": "carol", "password": "carol-password-1"}
        assert client.post("/api/v1/users", json=user).status_code == 201
        wrong = {"username": "carol", "password": "wrong"}
        with httpx.Client(base_url=launch.url, timeout=30.0) as anon:
            # Five wrong passwords at once: each is counted before its hash, so a sixth
            # sent meanwhile is refused rather than hashed too.
            with ThreadPoolExecutor(6) as pool:
                attempts = [
                    pool.submit(anon.post, "/api/v1/auth/login", json=wrong) for _ in "123456"
                ]
                answers = [attempt.result() for attempt in attempts]
            assert sorted(a.status_code for a in answers) == [401] * 5 + [429]
            refused = anon.post("/api/v1/auth/login", json=user)
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
            assert refused.json()["code"] == "throttled"
        assert client.get("/api/v1/whoami").status_code == 200
