"""The pub/sub REST API, and the signed endpoint peers forward messages to."""

from __future__ import annotations

import uuid

import orjson
import pytest
from channels.db import database_sync_to_async

from cluster.models import Member
from cluster.node import local_node
from cluster.signing import sign_request
from cluster.transport import HttpTransport, TransportError
from kv.hlc import wall_ms
from kv.tests.api.helpers import assert_error
from kv.tests.realtime import frames, opened, run, socket
from pubsub.forwarding import PUBSUB_PATH
from pubsub.subscribers import TOPICS_PATH, SubscriberBook, book

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


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_a_publish_nested_beyond_the_limit_is_400_and_not_forwarded(
    channel_layer, forwarded, api, settings
):
    limit = settings.KVS_MAX_JSON_DEPTH
    assert publish(api, "t", {"data": nested(limit - 1)}).status_code == 202  # the body: limit
    for depth in (limit, 300, 2_000):
        body = orjson.dumps({"data": nested(min(depth, 250))})
        if depth > 250:  # beyond what orjson encodes: build the text
            body = b'{"data": ' + b"[" * depth + b"]" * depth + b"}"
        response = api.post("/api/v1/pubsub/t", body, content_type="application/json")
        assert assert_error(response, 400)["code"] == "invalid_json"
    assert len(forwarded) == 1


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
        assert mine.json() == {
            "topics": [{"name": "team/a", "subscribers": 2}],
            "unreachable": [],
        }
        every = await database_sync_to_async(everyone.get)("/api/v1/pubsub/")
        assert [t["name"] for t in every.json()["topics"]] == ["b", "team/a"]
        for client in sockets:
            await client.disconnect()

    run(scenario)


def test_topics_list_needs_the_pubsub_scope(make_client, anon):
    assert_error(anon.get("/api/v1/pubsub/"), 401)
    assert_error(make_client(scopes=["read"]).get("/api/v1/pubsub/"), 403)


# --- The signed internal endpoint ----------------------------------------------------------------


@pytest.fixture
def peer(settings):
    """node2, an alive member here, whose signed requests the internal endpoints accept."""
    settings.KVS_CLUSTER_SECRET = SECRET
    return Member.objects.create(node_id="node2", url="http://node2.test", joined_at=2)


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
    channel_layer, forwarded, client, peer, token
):
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


def test_a_peer_takes_a_batch_of_messages_as_deep_as_a_publish_may_be(
    channel_layer, forwarded, client, peer, settings
):
    # The door limits a publish body {"data": ...}; a forward wraps it in {"messages": [...]}.
    deep = {**peer_message(), "data": nested(settings.KVS_MAX_JSON_DEPTH - 1)}
    response = forward(client, [peer_message(), deep])
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content) == {"delivered": 2, "duplicates": 0}


def test_unsigned_or_malformed_forwards_are_refused(channel_layer, client, peer):
    body = orjson.dumps({"messages": [peer_message()]})
    unsigned = client.generic("POST", PUBSUB_PATH, body, content_type="application/json")
    assert unsigned.status_code == 401
    assert forward(client, [peer_message()], secret="not-the-secret-000000").status_code == 401
    assert forward(client, [{**peer_message(), "id": "x"}]).status_code == 400
    assert forward(client, "nope").status_code == 400


# --- Topic counts of the whole cluster -----------------------------------------------------------


def test_topics_list_counts_the_live_peers_subscribers_and_names_the_silent(
    make_client, node_redis, monkeypatch
):
    Member.objects.create(node_id="node2", url="http://node2.test", joined_at=2)
    Member.objects.create(node_id="node3", url="http://node3.test", joined_at=3, status="suspect")
    Member.objects.create(node_id="node4", url="http://node4.test", joined_at=4, status="dead")
    asked = []

    def send(self, url, path, payload, *, to):
        assert url == f"http://{to}.test"  # signed for the member at that URL
        asked.append((url, path, payload))
        if url == "http://node3.test":
            raise TransportError("timed out")
        return {"topics": {"team/a": 3, "other": 1}}

    monkeypatch.setattr(HttpTransport, "send", send)
    here = SubscriberBook()
    here._counts.update({"team/a": 1})
    here.write()
    response = make_client(scopes=["pubsub"], prefix="team/").get("/api/v1/pubsub/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "topics": [{"name": "team/a", "subscribers": 4}],
        "unreachable": ["node3"],
    }
    assert sorted(asked) == [  # alive and suspect peers, not the dead one
        ("http://node2.test", TOPICS_PATH, {"prefix": "team/"}),
        ("http://node3.test", TOPICS_PATH, {"prefix": "team/"}),
    ]


def topics_request(client, payload, *, node_id: str = "node2"):
    body = orjson.dumps(payload)
    headers = sign_request(
        SECRET,
        node_id=node_id,
        target=local_node().node_id,
        method="POST",
        path=TOPICS_PATH,
        body=body,
        now=wall_ms(),
    )
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic("POST", TOPICS_PATH, body, content_type="application/json", **extra)


def test_a_member_gets_this_nodes_counts_under_the_prefix_it_asks_for(client, peer, node_redis):
    here = SubscriberBook()
    here._counts.update({"team/a": 2, "other": 1})
    here.write()
    every = topics_request(client, {"prefix": None})
    assert every.status_code == 200, every.content
    assert orjson.loads(every.content) == {"topics": {"team/a": 2, "other": 1}}
    under = topics_request(client, {"prefix": "team/"})
    assert orjson.loads(under.content) == {"topics": {"team/a": 2}}


def test_topic_counts_are_refused_to_strangers_and_bad_requests(client, peer, node_redis):
    unsigned = client.generic("POST", TOPICS_PATH, b"{}", content_type="application/json")
    assert unsigned.status_code == 401
    stranger = topics_request(client, {"prefix": None}, node_id="node9")
    assert stranger.status_code == 403 and stranger.json()["code"] == "not_a_member"
    for bad in ({"prefix": 3}, [], "x"):
        response = topics_request(client, bad)
        assert response.status_code == 400 and "detail" in response.json()
