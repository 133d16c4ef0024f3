"""The pub/sub websocket: who may subscribe, publishing with a frame, delivery, back-pressure."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from accounts.models import ApiToken
from accounts.tokens import token_hash
from kv.tests.realtime import closed_with, frames, opened, refused, run, socket
from kvsite.realtime import RealtimeConsumer
from pubsub.services import message_publish_async, topic_group
from pubsub.subscribers import book

pytestmark = pytest.mark.django_db


def topic_path(topic: str, **query) -> str:
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/ws/v1/pubsub/{quote(topic)}" + (f"?{extra}" if extra else "")


def test_sockets_without_credential_pubsub_scope_or_outside_the_prefix_are_refused(
    channel_layer, token
):
    reader = token(scopes=["read", "write"])
    confined = token(scopes=["pubsub"], prefix="team/")

    async def scenario():
        assert await refused(socket(topic_path("news"))) == 4401
        assert await refused(socket(topic_path("news", token="kvs_bad"))) == 4401
        assert await refused(socket(topic_path("news"), token=reader)) == 4403
        assert await refused(socket(topic_path("other/news"), token=confined)) == 4403
        assert await refused(socket(topic_path("a//b"), token=confined)) == 4400
        assert await refused(socket(topic_path("_sys/x"), token=confined)) == 4400
        client = socket(topic_path("team/news"), token=confined)
        await opened(client)
        await client.disconnect()

    run(scenario)


def test_sockets_of_a_topic_share_one_layer_subscription_until_the_last_leaves(
    channel_layer, forwarded, token
):
    secret = token(scopes=["pubsub"])
    group = topic_group("chat/room")

    async def scenario():
        clients = [socket(topic_path("chat/room"), token=secret) for _ in range(3)]
        for client in clients:
            await opened(client)
        layer = get_channel_layer()
        assert len(layer.groups[group]) == 1  # one per process, not one per socket
        await clients[0].send_json_to({"data": "to all"})
        for client in clients:
            expected = 2 if client is clients[0] else 1  # the publisher also gets its ack
            assert "message" in [f["type"] for f in await frames(client, expected)]
        for client in clients:
            await client.disconnect()
        assert not layer.groups.get(group)

    run(scenario)


def test_topics_that_are_not_utf8_or_hold_invisible_characters_are_refused(channel_layer, token):
    secret = token(scopes=["pubsub"])

    async def scenario():
        for path in ("/ws/v1/pubsub/al/%FF%FE", "/ws/v1/pubsub/al/%C0%80"):
            assert await refused(socket(path, token=secret)) == 4400
        assert await refused(socket(topic_path("news\u200b"), token=secret)) == 4400
        client = socket(topic_path("al/%FF"), token=secret)  # a percent sign is just a character
        await opened(client)
        await client.disconnect()

    run(scenario)


def test_anonymous_read_does_not_open_pubsub(channel_layer, settings):
    settings.KVS_ALLOW_ANONYMOUS_READ = True

    async def scenario():
        assert await refused(socket(topic_path("news"))) == 4401

    run(scenario)


def test_a_frame_publishes_to_every_subscriber_and_is_forwarded_once(
    channel_layer, forwarded, token
):
    secret = token(scopes=["pubsub"])

    async def scenario():
        alice, bob = (
            socket(topic_path("chat/room"), token=secret),
            socket(topic_path("chat/room"), token=secret),
        )
        other = socket(topic_path("chat/elsewhere"), token=secret)
        for client in (alice, bob, other):
            await opened(client)
        await alice.send_json_to({"data": {"text": "hi", "n": 1}})
        got = {f["type"]: f for f in await frames(alice, 2)}  # its own copy and the ack
        (message,) = await frames(bob, 1)
        assert message == got["message"]
        assert got["published"] == {"type": "published", "id": message["id"]}
        assert set(message) == {"type", "topic", "id", "data", "origin", "published_at"}
        assert (message["topic"], message["data"], message["origin"]) == (
            "chat/room",
            {"text": "hi", "n": 1},
            "node1",
        )
        assert await other.receive_nothing(0.1)
        assert [m["id"] for m in forwarded] == [message["id"]]
        for client in (alice, bob, other):
            await client.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    ("frame", "code"),
    [("not json", "invalid_json"), ('{"no": "data"}', "invalid"), ('["data"]', "invalid")],
)
def test_bad_frames_are_answered_with_an_error_and_publish_nothing(
    channel_layer, forwarded, token, frame, code
):
    secret = token(scopes=["pubsub"])

    async def scenario():
        client = socket(topic_path("t"), token=secret)
        await opened(client)
        await client.send_to(text_data=frame)
        (error,) = await frames(client, 1)
        assert (error["type"], error["code"]) == ("error", code) and error["detail"]
        assert forwarded == []
        await client.disconnect()

    run(scenario)


@pytest.mark.parametrize("depth", [65, 300, 2_000, 100_000])
def test_a_frame_nested_too_deeply_is_answered_with_an_error_and_the_socket_stays(
    channel_layer, forwarded, token, settings, depth
):
    settings.KVS_MAX_JSON_DEPTH = 64
    secret = token(scopes=["pubsub"])
    frame = '{"data": ' + "[" * depth + "]" * depth + "}"

    async def scenario():
        client = socket(topic_path("t"), token=secret)
        await opened(client)
        await client.send_to(text_data=frame)
        (error,) = await frames(client, 1)
        assert (error["type"], error["code"]) == ("error", "invalid_json")
        assert f"{depth + 1} levels" in error["detail"]
        await client.send_json_to({"data": "still here"})  # the socket is still open
        assert sorted(f["type"] for f in await frames(client, 2)) == ["message", "published"]
        assert [m["data"] for m in forwarded] == ["still here"]
        await client.disconnect()

    run(scenario)


def test_a_message_over_the_size_limit_is_refused(channel_layer, forwarded, token, settings):
    settings.KVS_PUBSUB_MAX_BYTES = 300
    secret = token(scopes=["pubsub"])

    async def scenario():
        client = socket(topic_path("t"), token=secret)
        await opened(client)
        await client.send_json_to({"data": "x" * 300})
        (error,) = await frames(client, 1)
        assert (error["type"], error["code"]) == ("error", "too_large")
        await client.disconnect()

    run(scenario)


def test_subscriptions_are_counted_while_open(channel_layer, token):
    secret = token(scopes=["pubsub"])

    async def scenario():
        one, two = socket(topic_path("t"), token=secret), socket(topic_path("t"), token=secret)
        await opened(one)
        await opened(two)
        assert book.counts() == {"t": 2}
        await one.disconnect()
        assert book.counts() == {"t": 1}
        await two.disconnect()
        assert book.counts() == {}

    run(scenario)


# --- Back-pressure -------------------------------------------------------------------------------


def test_a_full_send_queue_drops_frames_then_says_how_many_in_their_place(settings):
    settings.KVS_WS_SEND_QUEUE = 3

    async def scenario():
        consumer = RealtimeConsumer()
        consumer._queue = asyncio.Queue(maxsize=3)
        results = [consumer.offer(f"m{i}") for i in range(6)]
        assert results == [True, True, True, False, False, False]
        assert consumer._queue.get_nowait() == "m0"  # the client read one: room again
        assert consumer.offer("m6") is False  # the notice of the gap took the room
        assert drain(consumer) == ["m1", "m2", '{"type":"overflow","dropped":3}']
        assert consumer.offer("m7") is True
        assert drain(consumer) == ['{"type":"overflow","dropped":1}', "m7"]

    run(scenario)


def drain(consumer: RealtimeConsumer) -> list[str]:
    return [consumer._queue.get_nowait() for _ in range(consumer._queue.qsize())]


def test_the_sender_notes_the_gap_as_soon_as_there_is_room(settings):
    async def scenario():
        consumer = RealtimeConsumer()
        sent: list[str] = []

        async def send(message):
            sent.append(message["text"])

        consumer.base_send = send
        consumer._queue = asyncio.Queue(maxsize=2)
        for i in range(4):
            consumer.offer(f"m{i}")
        sender = asyncio.create_task(consumer._send_loop())
        deadline = asyncio.get_running_loop().time() + 5
        while consumer._queue.qsize() or len(sent) < 3:
            assert asyncio.get_running_loop().time() < deadline, sent
            await asyncio.sleep(0)
        sender.cancel()
        assert sent == ["m0", "m1", '{"type":"overflow","dropped":2}']

    run(scenario)


# --- Open sockets keep only the access they still have ------------------------------------------


def test_a_credential_that_loses_pubsub_closes_its_subscriptions_with_4403(
    channel_layer, forwarded, token, settings
):
    settings.KVS_TOKEN_CACHE_SECONDS = 0.2
    losing, keeping = token(scopes=["pubsub"]), token(scopes=["pubsub"])

    async def scenario():
        closing = socket(topic_path("t"), token=losing)
        staying = socket(topic_path("t"), token=keeping)
        for client in (closing, staying):
            await opened(client)
        await database_sync_to_async(_scopes_set)(losing, ["read"])
        assert await closed_with(closing, timeout=10) == 4403
        await message_publish_async(topic="t", data="still here")
        (message,) = await frames(staying, 1)
        assert message["data"] == "still here"
        for client in (closing, staying):
            await client.disconnect()

    run(scenario)


def _scopes_set(secret: str, scopes: list[str]) -> None:
    ApiToken.objects.filter(secret_hash=token_hash(secret)).update(scopes=scopes)
