"""The internal API that nodes call on each other (signed both ways)."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.views import APIView

from kv.hlc import wall_ms

from ..gossip import gossip_receive
from ..messages import InvalidMessage, gossip_message_parse
from ..node import local_node
from ..signing import sign_response
from .authentication import IsSignedNode, SignedNodeAuthentication


def signed_json(request, data: object, status: int = 200) -> HttpResponse:
    """`data` as JSON, signed as the answer to this request."""
    body = orjson.dumps(data)
    headers = sign_response(
        settings.KVS_CLUSTER_SECRET,
        request_signature=request.auth.signature,
        node_id=local_node().node_id,
        status=status,
        body=body,
    )
    return HttpResponse(body, status=status, content_type="application/json", headers=headers)


class InternalApi(APIView):
    """Base of the node-to-node views: signed requests only, no client credentials."""

    authentication_classes = [SignedNodeAuthentication]
    permission_classes = [IsSignedNode]
    throttle_classes: list = []


@extend_schema(exclude=True)
class GossipApi(InternalApi):
    """pushPull: the sender's member table in, ours out."""

    def post(self, request):
        try:
            message = gossip_message_parse(request.data)
        except InvalidMessage as error:
            raise ParseError(str(error)) from None
        if message["from"] != request.auth.node_id:
            raise ParseError("`from` is not the node that signed the request.")
        return signed_json(request, gossip_receive(message, wall_ms()))
