"""Logins cannot burn the node: failed attempts are limited per username and per client address,
before the password is checked, and every refusal is noted."""

import logging

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.cache import cache

from ..conftest import PASSWORD
from ..helpers import assert_error, bearer

pytestmark = pytest.mark.django_db

LOGIN, REFRESH, WHOAMI = "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/whoami"


class CountingHasher(MD5PasswordHasher):
    """The tests' fast hasher, counting the hashes it computes."""

    computed = 0

    def encode(self, password, salt):
        CountingHasher.computed += 1
        return super().encode(password, salt)


@pytest.fixture(autouse=True)
def _counted_hashes(settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    settings.KVS_LOGIN_THROTTLE_USER = "5/minute"
    settings.KVS_LOGIN_THROTTLE_ADDR = "20/minute"
    CountingHasher.computed = 0


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, at the start of a minute; move it with clock.now += seconds."""
    from kvsite.throttling import LoginThrottle

    class Clock:
        now = 1_800_000_000.0

    monkeypatch.setattr(LoginThrottle, "_now", lambda self: Clock.now)
    return Clock


def login(client, username, password, address="192.0.2.1", **extra):
    body = {"username": username, "password": password}
    return client.post(LOGIN, body, format="json", REMOTE_ADDR=address, **extra)


def assert_throttled(response) -> int:
    body = assert_error(response, 429)
    assert body["code"] == "throttled"
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 60
    return wait


def test_failed_logins_of_a_username_are_limited_from_any_address(anon, alice, clock):
    for i in range(5):
        assert_error(login(anon, "alice", f"wrong-{i}", address=f"192.0.2.{i}"), 401)
    clock.now += 20
    assert assert_throttled(login(anon, "alice", "wrong", address="198.51.100.7")) == 40
    assert_throttled(login(anon, "alice", PASSWORD, address="198.51.100.8"))
    assert login(anon, "bob-unknown", "x", address="198.51.100.7").status_code == 401


def test_failed_logins_from_an_address_are_limited_whatever_the_username(anon, alice, clock):
    for i in range(20):
        assert_error(login(anon, f"user{i}", "wrong", address="203.0.113.5"), 401)
    assert_throttled(login(anon, "someone-else", "wrong", address="203.0.113.5"))
    assert_throttled(login(anon, "alice", PASSWORD, address="203.0.113.5"))
    assert login(anon, "alice", PASSWORD, address="203.0.113.6").status_code == 200


def test_throttled_attempts_compute_no_password_hash(anon, alice, clock):
    for _ in range(5):
        login(anon, "alice", "wrong")
    computed = CountingHasher.computed
    for _ in range(10):
        assert_throttled(login(anon, "alice", "wrong"))
    assert CountingHasher.computed == computed


def test_unknown_usernames_cost_and_count_like_known_ones(anon, alice, clock):
    before = CountingHasher.computed
    assert_error(login(anon, "alice", "wrong"), 401)
    known = CountingHasher.computed - before
    assert_error(login(anon, "nobody", "wrong"), 401)
    assert CountingHasher.computed - before == 2 * known == 2
    for _ in range(4):
        login(anon, "nobody", "wrong")
    assert_throttled(login(anon, "nobody", "wrong", address="198.51.100.1"))


def test_the_right_password_works_again_after_the_window(anon, alice, clock):
    for _ in range(5):
        login(anon, "alice", "wrong")
    assert_throttled(login(anon, "alice", PASSWORD))
    clock.now += 60
    assert login(anon, "alice", PASSWORD).status_code == 200


def test_successful_logins_do_not_count(anon, alice, clock):
    for _ in range(25):
        assert login(anon, "alice", PASSWORD).status_code == 200
    for _ in range(4):
        assert_error(login(anon, "alice", "wrong"), 401)
    assert login(anon, "alice", PASSWORD).status_code == 200


def test_variants_of_a_username_share_its_limit(anon, alice, clock):
    for name in ("alice", "Alice", "ALICE", "aLiCe", "ａｌｉｃｅ"):
        login(anon, name, "wrong", address="192.0.2.9")
    assert_throttled(login(anon, "alice", "wrong", address="192.0.2.10"))


def test_a_forged_forwarded_for_header_is_no_new_address(anon, alice, clock):
    for i in range(20):
        forged = {"HTTP_X_FORWARDED_FOR": f"10.9.8.{i}"}
        assert_error(login(anon, f"u{i}", "wrong", address="203.0.113.9", **forged), 401)
    forged = {"HTTP_X_FORWARDED_FOR": "10.9.9.9"}
    assert_throttled(login(anon, "v", "wrong", address="203.0.113.9", **forged))


def test_ipv6_clients_are_counted_per_64(anon, alice, clock):
    for i in range(20):
        login(anon, f"u{i}", "wrong", address=f"2001:db8:1:2::{i + 1:x}")
    assert_throttled(login(anon, "v", "wrong", address="2001:db8:1:2:ffff::1"))
    assert login(anon, "alice", PASSWORD, address="2001:db8:1:3::1").status_code == 200


def test_failed_refreshes_count_against_the_address(anon, alice, clock):
    good = login(anon, "alice", PASSWORD, address="198.51.100.20").json()["refresh"]
    for _ in range(20):
        answer = anon.post(REFRESH, {"refresh": "not-a-jwt"}, format="json", REMOTE_ADDR="10.1.1.1")
        assert_error(answer, 401)
    assert_throttled(anon.post(REFRESH, {"refresh": good}, format="json", REMOTE_ADDR="10.1.1.1"))
    assert_throttled(login(anon, "alice", PASSWORD, address="10.1.1.1"))
    answer = anon.post(REFRESH, {"refresh": good}, format="json", REMOTE_ADDR="10.1.1.2")
    assert answer.status_code == 200


def test_successful_refreshes_do_not_count(anon, alice, clock):
    good = login(anon, "alice", PASSWORD).json()["refresh"]
    for _ in range(25):
        assert anon.post(REFRESH, {"refresh": good}, format="json").status_code == 200


def test_other_endpoints_are_not_limited_by_failed_logins(anon, alice, make_client, clock):
    for i in range(20):
        login(anon, f"u{i}", "wrong", address="127.0.0.1")
    assert_throttled(login(anon, "alice", PASSWORD, address="127.0.0.1"))
    client = make_client(scopes=["read"], user=alice)
    assert client.get(WHOAMI, REMOTE_ADDR="127.0.0.1").status_code == 200
    assert anon.get("/health", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_the_counters_live_in_the_cache(anon, alice, clock):
    for _ in range(5):
        login(anon, "alice", "wrong")
    assert_throttled(login(anon, "alice", PASSWORD))
    cache.clear()
    assert login(anon, "alice", PASSWORD).status_code == 200


def test_no_limits_when_the_rates_are_empty(anon, alice, clock, settings):
    settings.KVS_LOGIN_THROTTLE_USER = settings.KVS_LOGIN_THROTTLE_ADDR = ""
    for _ in range(30):
        assert_error(login(anon, "alice", "wrong"), 401)
    assert login(anon, "alice", PASSWORD).status_code == 200


def test_refused_and_throttled_logins_are_logged(anon, alice, clock, caplog):
    caplog.set_level(logging.WARNING, logger="accounts.services")
    for _ in range(6):
        login(anon, "alice", "wrong", address="192.0.2.77")
    bearer_client = bearer("x")
    bearer_client.post(REFRESH, {"refresh": "bad"}, format="json", REMOTE_ADDR="192.0.2.78")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("user='alice'" in m and "192.0.2.77" in m and "wrong" in m for m in lines) == 5
    assert sum("user='alice'" in m and "192.0.2.77" in m and "throttled" in m for m in lines) == 1
    assert any("192.0.2.78" in m and "refresh" in m for m in lines)
    assert not any("wrong" in m and "password=" in m for m in lines)
