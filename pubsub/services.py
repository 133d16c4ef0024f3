"""Topic pub/sub: publish on this node, deliver to its subscribers, forward once to every peer.

A message published here is delivered to this node's subscribers and handed to the forwarder,
which sends it once to every alive peer; a peer delivers it to its own subscribers and never
forwards it again. Every node remembers the ids it delivered for KVS_PUBSUB_DEDUPE_SECONDS (in
its Redis, so for all its processes) and drops a message it has already delivered. Delivery is
at most once: nothing is stored, and a peer that cannot be reached misses the message.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TypedDict

from django.conf import settings
from django.core.cache import cache

from accounts.permissions import key_scope_check
from accounts.scopes import PUBSUB
from cluster.node import local_node
from kv.hlc import wall_ms
from kv.keys import key_validate
from kvsite.exceptions import InvalidInput, TooLarge
from kvsite.realtime import frame_encode, layer_send, local_groups

from .forwarding import forward_soon
from .metrics import published_counted, received_counted

SEEN_KEY = "kvs:pubsub:seen:{}"


class Message(TypedDict):
    type: str  # always "message"
    topic: str
    id: str  # a UUID
    data: object
    origin: str  # the node it was published on
    published_at: int  # milliseconds since the epoch


def topic_validate(topic: str) -> str:
    """`topic` if it follows the key rules; raise InvalidKey otherwise."""
    return key_validate(topic, what="topic")


def topic_group(topic: str) -> str:
    """The channel-layer group of a topic (group names are short ASCII; topics are not)."""
    return "pubsub." + hashlib.sha256(topic.encode()).hexdigest()[:40]


def topic_access_check(request, topic: str) -> None:
    """Raise unless `request`'s credential may use `topic`: a valid name, the `pubsub` scope,
    and inside the token's prefix."""
    topic_validate(topic)
    key_scope_check(request, PUBSUB, topic)


def publish_body_parse(body: object) -> object:
    """The `data` of a publish body `{"data": ...}`; raise InvalidInput."""
    if not isinstance(body, dict) or "data" not in body:
        raise InvalidInput('Send {"data": <any JSON value>}.')
    return body["data"]


def message_new(*, topic: str, data: object, now: int | None = None) -> Message:
    """A new message of this node; raise TooLarge past KVS_PUBSUB_MAX_BYTES. (The node's id is
    cached after its first read: consumers read it once when a socket opens.)"""
    message = Message(
        type="message",
        topic=topic,
        id=str(uuid.uuid4()),
        data=data,
        origin=local_node().node_id,
        published_at=wall_ms() if now is None else now,
    )
    size = len(frame_encode(message).encode())
    if size > settings.KVS_PUBSUB_MAX_BYTES:
        raise TooLarge(f"The message is {size} bytes; at most {settings.KVS_PUBSUB_MAX_BYTES}.")
    return message


def message_first_seen(message_id: str) -> bool:
    """Remember `message_id`; whether this node had not seen it yet."""
    return cache.add(SEEN_KEY.format(message_id), 1, timeout=settings.KVS_PUBSUB_DEDUPE_SECONDS)


def _group_message(message: Message) -> dict:
    """The group event that hands `message` to the subscribers (encoded once for all of them)."""
    return {"type": "pubsub.message", "frame": frame_encode(message)}


def message_deliver(message: Message) -> None:
    """Hand `message` to this node's subscribers of its topic."""
    layer_send(topic_group(message["topic"]), _group_message(message))


def message_publish(*, topic: str, data: object, now: int | None = None) -> Message:
    """Publish `data` on `topic`: deliver it here and forward it to every alive peer.

    The origin does not remember the id: peers never send a message back.
    """
    message = message_new(topic=topic, data=data, now=now)
    message_deliver(message)
    forward_soon(message)
    published_counted()
    return message


async def message_publish_async(*, topic: str, data: object) -> Message:
    """`message_publish` for a consumer, without leaving the event loop (a hop to a thread and
    back per message would cap a busy process at a few publishes a second) and without waiting
    for Redis (the loop's outbox keeps the order)."""
    message = message_new(topic=topic, data=data)
    await local_groups().send(topic_group(topic), _group_message(message))
    forward_soon(message)
    published_counted()
    return message


def message_parse(raw: object) -> Message:
    """A message as a peer forwards it; raise InvalidInput."""
    if not isinstance(raw, dict):
        raise InvalidInput("A message is a JSON object.")
    topic, origin, at = raw.get("topic"), raw.get("origin"), raw.get("published_at")
    topic_validate(topic)
    try:
        message_id = str(uuid.UUID(raw.get("id")))
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput("A message id is a UUID.") from None
    if not isinstance(origin, str) or not origin or not isinstance(at, int) or "data" not in raw:
        raise InvalidInput("A message has topic, id, data, origin and published_at.")
    return Message(
        type="message", topic=topic, id=message_id, data=raw["data"], origin=origin, published_at=at
    )


def messages_receive(messages: list[Message]) -> int:
    """Deliver the messages a peer forwarded that this node has not delivered yet (they are not
    forwarded again); how many were delivered."""
    delivered = 0
    for message in messages:
        if message_first_seen(message["id"]):
            message_deliver(message)
            delivered += 1
    received_counted(delivered=delivered, duplicates=len(messages) - delivered)
    return delivered
