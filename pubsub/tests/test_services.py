"""Messages: their shape, delivery to this node's subscribers, and duplicate-free receipt."""

from __future__ import annotations

import re
import uuid

import pytest
from channels.db import database_sync_to_async

from kv.keys import InvalidKey
from kv.tests.realtime import frames, opened, run, socket
from kvsite.exceptions import InvalidInput, TooLarge
from pubsub import services

pytestmark = pytest.mark.django_db


def peer_message(**fields) -> dict:
    message = {
        "topic": "news",
        "id": str(uuid.uuid4()),
        "data": {"headline": "x"},
        "origin": "node2",
        "published_at": 1_700_000_000_000,
    }
    return {**message, **fields}


def test_a_new_message_names_its_topic_origin_and_time(settings):
    message = services.message_new(topic="a/b", data=[1, 2], now=123)
    assert message == {
        "type": "message",
        "topic": "a/b",
        "id": message["id"],
        "data": [1, 2],
        "origin": "node1",
        "published_at": 123,
    }
    assert uuid.UUID(message["id"])


def test_messages_past_the_size_limit_are_refused(settings):
    settings.KVS_PUBSUB_MAX_BYTES = 200
    with pytest.raises(TooLarge):
        services.message_new(topic="t", data="x" * 200)


def test_topic_groups_are_valid_channel_group_names_and_differ_per_topic():
    groups = {services.topic_group(t) for t in ("a", "a/b", "ü/β", "x" * 1000)}
    assert len(groups) == 4
    assert all(re.fullmatch(r"[a-z.0-9]{1,99}", g) for g in groups)


def test_peer_messages_are_checked():
    assert services.message_parse(peer_message())["origin"] == "node2"
    for bad in (
        peer_message(id="nope"),
        peer_message(origin=""),
        peer_message(published_at="soon"),
        {k: v for k, v in peer_message().items() if k != "data"},
        [],
    ):
        with pytest.raises(InvalidInput):
            services.message_parse(bad)
    with pytest.raises(InvalidKey):
        services.message_parse(peer_message(topic="/bad"))


def test_a_message_received_twice_is_delivered_once(channel_layer, token):
    secret = token(scopes=["pubsub"])
    message = services.message_parse(peer_message())

    async def scenario():
        client = socket("/ws/v1/pubsub/news", token=secret)
        await opened(client)
        receive = database_sync_to_async(services.messages_receive)
        assert await receive([message]) == 1
        assert await receive([message, message]) == 0
        (got,) = await frames(client, 1)
        assert got == {**message, "type": "message"}
        assert await client.receive_nothing(0.1)
        await client.disconnect()

    run(scenario)


def test_a_published_message_is_delivered_here_and_forwarded_once(channel_layer, forwarded, token):
    secret = token(scopes=["pubsub"])

    async def scenario():
        client = socket("/ws/v1/pubsub/t", token=secret)
        await opened(client)
        message = await database_sync_to_async(services.message_publish)(topic="t", data=1)
        assert await frames(client, 1) == [message]
        assert forwarded == [message]
        await client.disconnect()

    run(scenario)
