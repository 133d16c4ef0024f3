import pytest

pytestmark = pytest.mark.django_db


def test_anonymous_clients_over_the_rate_get_429_with_retry_after(anon, settings):
    settings.KVS_THROTTLE_ANON = "3/minute"
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    answers = [anon.get("/api/v1/kv/?prefix=a").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = anon.get("/api/v1/kv/?prefix=a")
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert limited.json()["code"] == "throttled"


def test_users_are_limited_per_user_when_a_rate_is_set(make_client, settings):
    settings.KVS_THROTTLE_USER = "2/minute"
    first, second = make_client(), make_client()  # two tokens of the same user
    assert first.get("/api/v1/kv/").status_code == 200
    assert second.get("/api/v1/kv/").status_code == 200
    assert first.get("/api/v1/kv/").status_code == 429


def test_no_user_limit_by_default(make_client, settings):
    settings.KVS_THROTTLE_USER = ""
    client = make_client()
    assert {client.get("/api/v1/kv/").status_code for _ in range(60)} == {200}


def test_health_is_never_throttled(anon, settings):
    settings.KVS_THROTTLE_ANON = "1/minute"
    assert {anon.get("/health").status_code for _ in range(5)} == {200}


def test_login_attempts_count_while_they_run(rf, settings):
    from rest_framework.exceptions import Throttled

    from kvsite.throttling import LoginThrottle

    settings.KVS_LOGIN_THROTTLE_USER = "3/day"  # no window ends mid-test
    throttle, request = LoginThrottle(), rf.post("/", REMOTE_ADDR="192.0.2.1")
    running = [throttle.attempt(request, username="alice") for _ in range(3)]
    with pytest.raises(Throttled):
        throttle.attempt(request, username="alice")
    running[0].succeeded()
    throttle.attempt(request, username="alice")
    with pytest.raises(Throttled):
        throttle.attempt(request, username="alice")


def test_anonymous_clients_cannot_escape_the_limit_with_a_forwarded_for_header(anon, settings):
    settings.KVS_THROTTLE_ANON = "3/day"  # no window ends mid-test
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    answers = [
        anon.get("/api/v1/kv/?prefix=a", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code
        for i in range(4)
    ]
    assert answers == [200, 200, 200, 429]
    assert anon.get("/api/v1/kv/?prefix=a", REMOTE_ADDR="192.0.2.50").status_code == 200


class _LostRedis:
    """A cache whose Redis is gone: every call fails as redis-py fails on a refused connection."""

    def __getattr__(self, name):
        import redis

        def fail(*args, **kwargs):
            raise redis.ConnectionError(
                "Error 111 connecting to 127.0.0.1:6379. Connection refused."
            )

        return fail


def test_without_redis_request_rates_are_not_limited_but_logins_are_refused(
    anon, make_client, settings, monkeypatch
):
    from kvsite.throttling import AnonThrottle, LoginThrottle, UserThrottle

    settings.KVS_THROTTLE_ANON, settings.KVS_THROTTLE_USER = "3/minute", "2/minute"
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    for throttle in (AnonThrottle, UserThrottle, LoginThrottle):
        monkeypatch.setattr(throttle, "cache", _LostRedis())
    assert {anon.get("/api/v1/kv/?prefix=a").status_code for _ in range(5)} == {200}
    client = make_client()
    assert {client.get("/api/v1/kv/").status_code for _ in range(4)} == {200}
    # A failed-login limit that cannot count refuses, rather than let guesses through.
    login = anon.post("/api/v1/auth/login", {"username": "root", "password": "x"}, format="json")
    assert login.status_code == 503
    assert login.json()["reason"] == "redis"
