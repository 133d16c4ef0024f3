"""The internal API that nodes call on each other (signed both ways)."""

from __future__ import annotations

import uuid

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.views import APIView

from kv.hlc import wall_ms
from kv.merkle import tree_depth

from ..antientropy import digests_answer, merkle_answer, versions_receive
from ..gossip import forget_receive, gossip_receive
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
    accepts_any_target = False  # only requests signed for this node's id


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


def _json_body(request) -> dict:
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError as error:
        raise ParseError(f"Invalid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ParseError("Expected a JSON object.")
    return data


def _is_digest(d) -> bool:
    if not (isinstance(d, list) and len(d) == 4):
        return False
    key, version, hlc, joined = d
    if not (isinstance(key, str) and isinstance(hlc, int) and isinstance(joined, int)):
        return False
    try:
        uuid.UUID(version)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


@extend_schema(exclude=True)
class MerkleApi(InternalApi):
    """The hashes of the Merkle tree nodes asked for."""

    def post(self, request):
        data = _json_body(request)
        level, nodes = data.get("level"), data.get("nodes")
        if not isinstance(level, int) or not isinstance(nodes, list):
            raise ParseError("Expected {level: int, nodes: [int]}.")
        if not all(isinstance(n, int) and n >= 0 for n in nodes) or not 0 <= level <= tree_depth():
            raise ParseError("Tree level or node index out of range.")
        return signed_json(request, merkle_answer(level=level, nodes=nodes))


@extend_schema(exclude=True)
class DigestsApi(InternalApi):
    """Our versions newer than the asker's in the given buckets, and the keys we want."""

    def post(self, request):
        data = _json_body(request)
        buckets, digests = data.get("buckets"), data.get("digests")
        shape = "Expected {buckets: [int], digests: [[key, version, hlc, joined]]}."
        if not isinstance(buckets, list) or not isinstance(digests, list):
            raise ParseError(shape)
        if not all(isinstance(b, int) for b in buckets) or not all(map(_is_digest, digests)):
            raise ParseError(shape)
        return signed_json(request, digests_answer(buckets=buckets, digests=digests))


@extend_schema(exclude=True)
class VersionsApi(InternalApi):
    """Apply versions pushed by a peer."""

    def post(self, request):
        versions = _json_body(request).get("versions")
        if not isinstance(versions, list):
            raise ParseError("Expected {versions: [...]}.")
        try:
            return signed_json(request, versions_receive(versions=versions))
        except (TypeError, ValueError, KeyError) as error:
            raise ParseError(f"Malformed version: {error}") from None


@extend_schema(exclude=True)
class ForgetApi(InternalApi):
    """Forget a dead or departed member, as a peer's operator asked (`gossip_forget`)."""

    def post(self, request):
        data = _json_body(request)
        node_id, incarnation = data.get("node_id"), data.get("incarnation")
        if not isinstance(node_id, str) or not node_id or not isinstance(incarnation, int):
            raise ParseError("Expected {node_id: str, incarnation: int}.")
        return signed_json(request, {"forgotten": forget_receive(node_id, incarnation)})
