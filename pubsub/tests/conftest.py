"""Pub/sub test fixtures: an in-memory channel layer, an embedded Redis for the subscriber counts,
and forwarding to peers recorded instead of sent."""

from __future__ import annotations

import pytest

from kv.tests.realtime import channel_layer  # noqa: F401 (a fixture)
from pubsub import services, subscribers


@pytest.fixture(autouse=True)
def node_redis(_redis_server):
    """The node's Redis, empty, and this process's subscriber counts forgotten (the server is
    the session's, from the top conftest: the realtime tests of kvsite use it too)."""
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
