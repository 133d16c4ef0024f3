"""The pub/sub REST API, and the signed endpoint peers forward messages to."""

from __future__ import annotations

import uuid

import orjson
import pytest
from channels.db import database_sync_to_async

from cluster.node import local_node
from cluster.signing import sign_request
from kv.hlc import wall_ms
from kv.tests.api.helpers import assert_error
from kv.tests.realtime import frames, opened, run, socket
from pubsub.forwarding import PUBSUB_PATH
from pubsub.subscribers import book

pytestmark = pytest.mark.django_db

SECRET = "cluster-secret-for-tests-0123456789"


def publish(client, topic: str, body, **kw):
    return client.post(f"/api/v1/pubsub/{topic}", body, format="json", **kw)


def test_a_rest_publish_answers_202_with_the_id_subscribers_receive(
    channel_layer, forwarded, make_client, token
):
    api = make_client(scopes=["pubsub"])
    secret = token(scopes=["pubsub"])

    async def scenario():
        client = socket("/ws/v1/pubsub/alerts/disk", token=secret)
        await opened(client)
        response = await database_sync_to_async(publish)(api, "alerts/disk", {"data": {"p": 93}})
        assert response.status_code == 202, response.content
        (message,) = await frames(client, 1)
        assert response.json() == {"id": message["id"]}
        assert (message["topic"], message["data"]) == ("alerts/disk", {"p": 93})
        assert [m["id"] for m in forwarded] == [message["id"]]
        await client.disconnect()

    run(scenario)


def test_rest_publish_needs_a_credential_the_pubsub_scope_and_the_prefix(
    channel_layer, forwarded, make_client, anon
):
    assert_error(publish(anon, "t", {"data": 1}), 401)
    assert_error(publish(make_client(scopes=["read", "write"]), "t", {"data": 1}), 403)
    confined = make_client(scopes=["pubsub"], prefix="team/")
    assert_error(publish(confined, "other/t", {"data": 1}), 403)
    assert publish(confined, "team/t", {"data": 1}).status_code == 202
    assert len(forwarded) == 1


@pytest.mark.parametrize(
    ("topic", "body", "status"),
    [
        ("a//b", {"data": 1}, 400),
        ("_sys/x", {"data": 1}, 400),
        ("t", {"nodata": 1}, 400),
        ("t", [1], 400),
        ("t", {"data": "x" * 300_000}, 413),
    ],
)
def test_bad_publishes_are_refused(channel_layer, forwarded, api, topic, body, status):
    assert_error(publish(api, topic, body), status)
    assert forwarded == []


def test_data_may_be_any_json_value_null_included(channel_layer, forwarded, api):
    assert publish(api, "t", {"data": None}).status_code == 202
    assert forwarded[0]["data"] is None


def test_topics_list_shows_subscribed_topics_within_the_callers_prefix(
    channel_layer, make_client, token
):
    secret = token(scopes=["pubsub"])
    confined = make_client(scopes=["pubsub"], prefix="team/")
    everyone = make_client(scopes=["pubsub"])

    async def scenario():
        sockets = [socket(f"/ws/v1/pubsub/{t}", token=secret) for t in ("team/a", "team/a", "b")]
        for client in sockets:
            await opened(client)
        await database_sync_to_async(book.write)()
        mine = await database_sync_to_async(confined.get)("/api/v1/pubsub/")
        assert mine.json() == {"topics": [{"name": "team/a", "subscribers": 2}]}
        every = await database_sync_to_async(everyone.get)("/api/v1/pubsub/")
        assert [t["name"] for t in every.json()["topics"]] == ["b", "team/a"]
        for client in sockets:
            await client.disconnect()

    run(scenario)


def test_topics_list_needs_the_pubsub_scope(make_client, anon):
    assert_error(anon.get("/api/v1/pubsub/"), 401)
    assert_error(make_client(scopes=["read"]).get("/api/v1/pubsub/"), 403)


# --- The signed internal endpoint ----------------------------------------------------------------


def forward(client, messages, *, secret: str = SECRET):
    body = orjson.dumps({"messages": messages})
    headers = sign_request(
        secret,
        node_id="node2",
        target=local_node().node_id,
        method="POST",
        path=PUBSUB_PATH,
        body=body,
        now=wall_ms(),
    )
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic("POST", PUBSUB_PATH, body, content_type="application/json", **extra)


def peer_message() -> dict:
    return {
        "topic": "news",
        "id": str(uuid.uuid4()),
        "data": [1],
        "origin": "node2",
        "published_at": wall_ms(),
    }


def test_forwarded_messages_are_delivered_once_and_not_forwarded_again(
    channel_layer, forwarded, client, settings, token
):
    settings.KVS_CLUSTER_SECRET = SECRET
    secret = token(scopes=["pubsub"])
    message = peer_message()

    async def scenario():
        subscriber = socket("/ws/v1/pubsub/news", token=secret)
        await opened(subscriber)
        first = await database_sync_to_async(forward)(client, [message])
        assert first.status_code == 200, first.content
        assert orjson.loads(first.content) == {"delivered": 1, "duplicates": 0}
        again = await database_sync_to_async(forward)(client, [message])
        assert orjson.loads(again.content) == {"delivered": 0, "duplicates": 1}
        assert await frames(subscriber, 1) == [{**message, "type": "message"}]
        assert await subscriber.receive_nothing(0.1)
        assert forwarded == []
        await subscriber.disconnect()

    run(scenario)


def test_unsigned_or_malformed_forwards_are_refused(channel_layer, client, settings):
    settings.KVS_CLUSTER_SECRET = SECRET
    body = orjson.dumps({"messages": [peer_message()]})
    unsigned = client.generic("POST", PUBSUB_PATH, body, content_type="application/json")
    assert unsigned.status_code == 401
    assert forward(client, [peer_message()], secret="not-the-secret-000000").status_code == 401
    assert forward(client, [{**peer_message(), "id": "x"}]).status_code == 400
    assert forward(client, "nope").status_code == 400
