"""The watch as server-sent events (`GET /api/v1/watch`): the same refusals, replay, ready and
live events as the websocket, each event's `id:` its revision, and `Last-Event-ID` resuming."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator
from django.utils import timezone

from accounts.models import ApiToken, User
from kv import watch
from kvsite.eventstream import KEEPALIVE, event_encode

from .realtime import run
from .test_consumers import announce, put, restrict  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _node_id(settings):
    settings.KVS_NODE_ID = "node1"


@pytest.fixture
def secret(make_client, root_user):
    """make_client tokens' secrets: secret(scopes=[...], user=..., prefix=...)."""

    def issue(**kw) -> str:
        return make_client(**kw).token.secret

    return issue


class Stream:
    """A client of the project's ASGI application reading one server-sent-events answer."""

    def __init__(self, query: str, *, token: str | None = None, headers=(), method="GET"):
        from kvsite.asgi import application

        sent = list(headers)
        if token is not None:
            sent.append((b"authorization", f"Bearer {token}".encode()))
        scope = {
            "type": "http",
            "method": method,
            "path": "/api/v1/watch",
            "query_string": query.encode(),
            "headers": sent,
        }
        self.app = ApplicationCommunicator(application, scope)
        self.buffer = b""
        self.ended = False  # the response's last body message arrived

    async def open(self) -> dict:
        """Send the request; the response head."""
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        return await self.app.receive_output(2)

    async def events(self, count: int, timeout: float = 2) -> list[tuple[int | None, dict]]:
        """The next `count` events as (id, decoded data); comments and `retry:` skipped."""
        got: list[tuple[int | None, dict]] = []
        while len(got) < count:
            while b"\n\n" not in self.buffer:
                message = await self.app.receive_output(timeout)
                assert message["type"] == "http.response.body", message
                self.buffer += message["body"]
                self.ended = not message.get("more_body", False)
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in raw.split(b"\n") if b": " in line)
            if b"data" in fields:
                ident = int(fields[b"id"]) if b"id" in fields else None
                got.append((ident, json.loads(fields[b"data"])))
        return got

    async def close(self) -> None:
        await self.app.send_input({"type": "http.disconnect"})
        await self.app.wait(2)


def query(prefix: str = "", **extra) -> str:
    return f"prefix={quote(prefix)}" + "".join(f"&{k}={v}" for k, v in extra.items())


def test_event_encoding_carries_the_revision_as_id():
    assert (
        event_encode('{"type":"put","revision":7}')
        == b'id: 7\ndata: {"type":"put","revision":7}\n\n'
    )
    assert event_encode('{"type":"overflow"}') == b'data: {"type":"overflow"}\n\n'
    assert event_encode(KEEPALIVE) == b": keepalive\n\n"


def test_refusals_are_json_http_answers(channel_layer, secret):
    writer = secret(scopes=["write"])
    reader = secret(scopes=["read"])

    async def scenario():
        for stream, status in [
            (Stream(query("a/")), 401),
            (Stream(query("a/"), token="kvs_nope"), 401),
            (Stream(query("a/"), token=writer), 403),
            (Stream(query("a//b"), token=reader), 400),
            (Stream(query("a/"), token=reader, method="POST"), 405),
        ]:
            start = await stream.open()
            assert (start["type"], start["status"]) == ("http.response.start", status)
            assert (b"content-type", b"application/json") in start["headers"]
            body = await stream.app.receive_output(2)
            assert json.loads(body["body"])["detail"]
            assert not body.get("more_body")

    run(scenario)


def test_replay_ready_then_live_events_with_revision_ids(announce, secret):  # noqa: F811
    before = put("a/1")
    put("a/2", '{"n":2}')
    reader = secret(scopes=["read"])
    head = watch.watch_head()[0]

    async def scenario():
        stream = Stream(query("a/", since=before), token=reader)
        start = await stream.open()
        assert start["status"] == 200
        assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
        (ident, event), (ready_id, ready) = await stream.events(2)
        assert (event["type"], event["key"], event["value"], ident) == (
            "put",
            "a/2",
            {"n": 2},
            event["revision"],
        )
        assert ready == {"type": "ready", "revision": head, "node": "node1"}
        assert ready_id == head
        live = await database_sync_to_async(put)("a/3", '"three"')
        await announce()
        ((ident, event),) = await stream.events(1)
        assert (ident, event["key"], event["value"]) == (live, "a/3", "three")
        await stream.close()

    run(scenario)


def test_last_event_id_resumes_after_that_revision(announce, secret):  # noqa: F811
    reader = secret(scopes=["read"])
    seen = put("a/1")
    missed = put("a/2")

    async def scenario():
        stream = Stream(query("a/"), token=reader, headers=[(b"last-event-id", str(seen).encode())])
        await stream.open()
        (ident, event), (_, ready) = await stream.events(2)
        assert (ident, event["key"]) == (missed, "a/2")
        assert ready["type"] == "ready"
        await stream.close()

    run(scenario)


def test_a_bad_last_event_id_is_400(channel_layer, secret):
    reader = secret(scopes=["read"])

    async def scenario():
        stream = Stream(query("a/"), token=reader, headers=[(b"last-event-id", b"x")])
        assert (await stream.open())["status"] == 400

    run(scenario)


def test_keys_the_caller_may_not_read_are_left_out(announce, secret):  # noqa: F811
    put("a/open")
    put("a/secret")
    restrict("a/secret")
    reader = secret(scopes=["read"], user=User.objects.create_user(username="dave"))

    async def scenario():
        stream = Stream(query("a/", since=0), token=reader)
        await stream.open()
        got = await stream.events(2)
        assert [e.get("key") for _, e in got] == ["a/open", None]
        await stream.close()

    run(scenario)


def test_a_revoked_token_ends_the_stream_with_an_error_event(announce, secret, settings):  # noqa: F811
    settings.KVS_TOKEN_CACHE_SECONDS = 0.1
    reader = secret(scopes=["read"])

    async def scenario():
        stream = Stream(query("a/"), token=reader)
        await stream.open()
        await stream.events(1)  # ready
        await database_sync_to_async(ApiToken.objects.update)(revoked_at=timezone.now())
        ((_, event),) = await stream.events(1, timeout=10)  # the periodic recheck closes it
        assert (event["type"], event["status"]) == ("error", 401)
        assert stream.ended

    run(scenario)
