"""Pub/sub and websocket metrics: messages in and out, open sockets, frames sent and dropped."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from channels.db import database_sync_to_async

from cluster.membership import MemberState
from cluster.transport import FakeTransport, TransportError
from kv.hlc import wall_ms
from kv.tests.realtime import frames, opened, run, socket
from kvsite.realtime import RealtimeConsumer
from ops.tests.helpers import value
from pubsub.forwarding import PUBSUB_PATH, Forwarder
from pubsub.services import message_parse, messages_receive
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.django_db
PEER = MemberState("node2", "http://node2.test", 1)


def test_publishes_count_as_messages_in_from_clients(api, channel_layer, forwarded):
    before = value("kvs_pubsub_messages_in_total", source="client")
    assert api.post("/api/v1/pubsub/news", {"data": 1}, format="json").status_code == 202
    assert value("kvs_pubsub_messages_in_total", source="client") == before + 1


def test_forwarded_messages_count_once_and_copies_as_duplicates(channel_layer):
    delivered = value("kvs_pubsub_messages_in_total", source="peer")
    duplicates = value("kvs_pubsub_duplicates_total")
    message = message_parse(
        {
            "topic": "t",
            "id": str(uuid.uuid4()),
            "data": 1,
            "origin": "node2",
            "published_at": wall_ms(),
        }  # fmt: skip
    )
    assert messages_receive([message, message]) == 1
    assert value("kvs_pubsub_messages_in_total", source="peer") == delivered + 1
    assert value("kvs_pubsub_duplicates_total") == duplicates + 1


def out(**labels) -> float:
    return value("kvs_pubsub_messages_out_total", peer="node2", **labels)


def dropped(reason: str) -> float:
    return value("kvs_pubsub_forward_dropped_total", peer="node2", reason=reason)


def test_forwards_count_as_messages_out_and_failures_as_dropped():
    transport, attempts = FakeTransport(), []
    transport.route(PEER.url, lambda path, payload: {"delivered": len(payload["messages"])})
    forwarder = Forwarder(peers=lambda: [PEER], transport=lambda: transport)
    sent, failed = out(), dropped("failed")
    forwarder.forward({"id": "a"})
    forwarder.forward({"id": "b"})
    wait_for(lambda: out() == sent + 2, timeout=5, what="two messages out", explain=out)

    def unreachable(path, payload):
        attempts.append(path)
        raise TransportError("unreachable")

    transport.route(PEER.url, unreachable)
    forwarder.forward({"id": "c"})
    wait_for(lambda: dropped("failed") == failed + 1, timeout=5, what="one failed message")
    assert attempts == [PUBSUB_PATH, PUBSUB_PATH]  # tried twice, then given up and counted
    assert out() == sent + 2


def test_messages_an_outbox_cannot_hold_count_as_dropped(settings):
    settings.KVS_PUBSUB_FORWARD_QUEUE = 2
    settings.KVS_PUBSUB_FORWARD_GATHER = 0
    release, posting = threading.Event(), threading.Event()
    transport = FakeTransport()

    def slow(path, payload):
        posting.set()
        release.wait(10)
        return {"delivered": len(payload["messages"])}

    transport.route(PEER.url, slow)
    forwarder = Forwarder(peers=lambda: [PEER], transport=lambda: transport)
    sent, overflow = out(), dropped("overflow")
    forwarder.forward({"id": "first"})
    assert posting.wait(5)  # the first post is under way and holds the outbox's thread
    for i in range(5):
        forwarder.forward({"id": str(i)})
    wait_for(lambda: forwarder._outboxes, timeout=5, what="the outbox")
    release.set()
    wait_for(lambda: out() == sent + 3, timeout=5, what="three messages out", explain=out)
    assert dropped("overflow") == overflow + 3  # five waited where two fit


avalue = database_sync_to_async(value)  # a scrape reads the database too


async def open_sockets(kind: str) -> float:
    return await avalue("kvs_websockets_open", kind=kind)


async def reaches(name: str, expected: float, timeout: float = 5, **labels) -> bool:
    """Whether the sample reaches `expected` within `timeout` seconds (a socket's sender counts
    a frame just after handing it over)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (seen := await avalue(name, **labels)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name} {labels} is {seen}, not {expected}")
        await asyncio.sleep(0.01)
    return True


def test_open_sockets_and_frames_sent_are_counted_by_kind(channel_layer, token):
    secret = token(scopes=["pubsub", "read"])

    async def scenario():
        pubsub_open, watch_open = await open_sockets("pubsub"), await open_sockets("watch")
        sent = await avalue("kvs_websocket_frames_sent_total", kind="pubsub")
        subscriber = socket("/ws/v1/pubsub/room", token=secret)
        watcher = socket("/ws/v1/watch?prefix=x/", token=secret)
        await opened(subscriber)
        await opened(watcher)
        assert await open_sockets("pubsub") == pubsub_open + 1
        assert await open_sockets("watch") == watch_open + 1
        await subscriber.send_json_to({"data": 1})
        await frames(subscriber, 2)  # the message and the ack
        assert await reaches("kvs_websocket_frames_sent_total", sent + 2, kind="pubsub")
        await subscriber.disconnect()
        await watcher.disconnect()
        assert await open_sockets("pubsub") == pubsub_open
        assert await open_sockets("watch") == watch_open

    run(scenario)


def test_frames_a_full_queue_drops_are_counted():
    async def scenario():
        consumer = RealtimeConsumer()
        consumer.kind = "pubsub"
        consumer._queue = asyncio.Queue(maxsize=1)
        before = await avalue("kvs_websocket_frames_dropped_total", kind="pubsub")
        assert [consumer.offer(f"m{i}") for i in range(4)] == [True, False, False, False]
        assert await avalue("kvs_websocket_frames_dropped_total", kind="pubsub") == before + 3

    run(scenario)
