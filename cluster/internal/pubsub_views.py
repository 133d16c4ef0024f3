"""The internal pub/sub endpoints: messages a peer published, for this node's subscribers; this
node's subscriber counts, for a peer listing the cluster's topics."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError

from kvsite.exceptions import InvalidInput
from kvsite.presence import watchers_local
from pubsub.services import message_parse, messages_receive
from pubsub.subscribers import topics_answer

from .views import MemberApi, signed_json


@extend_schema(exclude=True)
class PubsubMessagesApi(MemberApi):
    """Deliver a peer's messages to local subscribers; they are never forwarded again."""

    def post(self, request):
        raw = request.data.get("messages") if isinstance(request.data, dict) else None
        if not isinstance(raw, list):
            raise ParseError("Expected {messages: [...]}.")
        try:
            messages = [message_parse(m) for m in raw]
        except InvalidInput as error:
            raise ParseError(f"Malformed message: {error}") from None
        delivered = messages_receive(messages)
        return signed_json(
            request, {"delivered": delivered, "duplicates": len(messages) - delivered}
        )


@extend_schema(exclude=True)
class PubsubTopicsApi(MemberApi):
    """This node's subscribers per topic under `prefix` (null: every topic)."""

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else None
        prefix = data.get("prefix") if data is not None else None
        if data is None or not (prefix is None or isinstance(prefix, str)):
            raise ParseError("Expected {prefix: str or null}.")
        return signed_json(request, topics_answer(prefix=prefix))


@extend_schema(exclude=True)
class WatchersApi(MemberApi):
    """This node's open watches and subscriptions under `prefix` (null: all)."""

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else None
        prefix = data.get("prefix") if data is not None else None
        if data is None or not (prefix is None or isinstance(prefix, str)):
            raise ParseError("Expected {prefix: str or null}.")
        return signed_json(request, {"watchers": watchers_local(prefix=prefix)})
