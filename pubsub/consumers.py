"""The pub/sub websocket: a protocol adapter over pubsub.services."""

from __future__ import annotations

from channels.db import database_sync_to_async
from rest_framework.exceptions import APIException

from cluster.node import local_node
from kvsite.exceptions import KvsError
from kvsite.realtime import RealtimeConsumer, frame_encode
from kvsite.ws_auth import WsRequest

from .services import message_publish_async, publish_body_parse, topic_access_check, topic_group
from .subscribers import book


class PubSubConsumer(RealtimeConsumer):
    """`/ws/v1/pubsub/{topic}`: every message published on the topic, on any node; a frame
    `{"data": ...}` publishes one (answered with `{"type": "published", "id"}`)."""

    kind = "pubsub"

    topic: str | None = None

    async def connect(self) -> None:
        topic = self.scope["url_route"]["kwargs"]["topic"]
        try:
            topic_access_check(self.credential(), topic)
        except (KvsError, APIException) as error:
            await self.refuse(error)
            return
        await database_sync_to_async(local_node)()  # cached from now on, for message_new
        await self.group_join(topic_group(topic))
        self.topic = topic
        await self.accept()
        book.joined(topic)

    def presence(self) -> dict:
        return {**self.presence_base(), "kind": "pubsub", "topic": self.topic, "since": None}

    async def disconnect(self, code: int) -> None:
        if self.topic is not None:
            book.left(self.topic)

    async def receive_json(self, content: object) -> None:
        try:
            data = publish_body_parse(content)
            message = await message_publish_async(topic=self.topic, data=data)
        except KvsError as error:
            self.offer(frame_encode({"type": "error", **error.as_dict()}))
            return
        self.offer(frame_encode({"type": "published", "id": message["id"]}))

    def credential_renewed(self, request: WsRequest) -> None:
        topic_access_check(request, self.topic)  # still `pubsub`, and inside the token's prefix

    def group_event(self, event: dict) -> None:
        self.offer(event["frame"])  # a full queue drops it and later says how many were lost
