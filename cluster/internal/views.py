"""The internal API that nodes call on each other (signed both ways)."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.views import APIView

from kv.hlc import wall_ms

from ..antientropy import digests_answer, merkle_answer, versions_receive
from ..compression import accepts_zstd, body_encode
from ..gossip import forget_receive, gossip_receive
from ..health import node_health
from ..messages import InvalidMessage, gossip_message_parse
from ..node import local_node
from ..signing import sign_response
from ..wire import (
    WireError,
    digests_request_parse,
    forget_request_parse,
    merkle_request_parse,
    versions_parse,
)
from .authentication import IsSignedNode, SignedNodeAuthentication
from .parsers import InternalJSONParser
from .permissions import IsMemberNode


def signed_json(request, data: object, status: int = 200) -> HttpResponse:
    """`data` as JSON, signed as the answer to this request (compressed if it asked and it is
    large)."""
    body, encoding = body_encode(orjson.dumps(data), allowed=accepts_zstd(request.headers))
    headers = sign_response(
        settings.KVS_CLUSTER_SECRET,
        request_signature=request.auth.signature,
        node_id=local_node().node_id,
        status=status,
        body=body,
    )
    return HttpResponse(
        body, status=status, content_type="application/json", headers={**headers, **encoding}
    )


class InternalApi(APIView):
    """Base of the node-to-node views: signed requests only, no client credentials."""

    authentication_classes = [SignedNodeAuthentication]
    permission_classes = [IsSignedNode]
    parser_classes = [InternalJSONParser]
    throttle_classes: list = []
    accepts_any_target = False  # only requests signed for this node's id
    # Bodies wrap what clients sent (a forwarded pub/sub message: 2 levels) beyond the door's
    # KVS_MAX_JSON_DEPTH (kvsite.parsers.JSONParser).
    json_depth_extra = 4


class MemberApi(InternalApi):
    """Base of the views that exchange data or act on the cluster: from current members only,
    and only while this node is one (see `peer_refusal`)."""

    permission_classes = [IsSignedNode, IsMemberNode]


@extend_schema(exclude=True)
class GossipApi(InternalApi):
    """pushPull: the sender's member table in, ours out. The one endpoint that accepts a request
    signed for any node (`*`): a joining node does not know its seed's id yet."""

    accepts_any_target = True

    def post(self, request):
        try:
            message = gossip_message_parse(request.data)
        except InvalidMessage as error:
            raise ParseError(str(error)) from None
        if message["from"] != request.auth.node_id:
            raise ParseError("`from` is not the node that signed the request.")
        return signed_json(request, gossip_receive(message, wall_ms()))


def _json_body(request) -> object:
    """The body, parsed by the one JSON parser (kvsite.parsers: 400 for text that is not JSON)."""
    return request.data


@extend_schema(exclude=True)
class MerkleApi(MemberApi):
    """The hashes of the Merkle tree nodes asked for (distinct nodes of one level)."""

    def post(self, request):
        level, nodes = merkle_request_parse(_json_body(request))
        return signed_json(request, merkle_answer(level=level, nodes=nodes))


@extend_schema(exclude=True)
class DigestsApi(MemberApi):
    """Our versions newer than the asker's in the given buckets, and the keys we want."""

    def post(self, request):
        buckets, digests = digests_request_parse(_json_body(request))
        return signed_json(request, digests_answer(buckets=buckets, digests=digests))


@extend_schema(exclude=True)
class VersionsApi(MemberApi):
    """Apply versions pushed by a peer: all of them once every one is valid, else none (400
    naming the first bad version's index and field)."""

    def post(self, request):
        data = _json_body(request)
        if not isinstance(data, dict) or set(data) != {"versions"}:
            raise WireError("Expected {versions: [...]}.", field="versions")
        return signed_json(request, versions_receive(versions=versions_parse(data["versions"])))


@extend_schema(exclude=True)
class ForgetApi(MemberApi):
    """Forget a dead or departed member, as a peer's operator asked (`gossip_forget`)."""

    def post(self, request):
        node_id, incarnation = forget_request_parse(_json_body(request))
        return signed_json(request, {"forgotten": forget_receive(node_id, incarnation)})


@extend_schema(exclude=True)
class HealthApi(MemberApi):
    """This node's part of the cluster's health view."""

    def post(self, request):
        return signed_json(request, node_health())
