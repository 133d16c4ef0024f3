"""Node health and status, the member list, forgetting a member, and leaving the cluster."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

import kvsite
from accounts.permissions import scope_check
from accounts.scopes import READ
from kv.hlc import wall_ms
from kv.keys import prefix_validate
from kv.selectors import live_key_count, store_state
from kvsite.exceptions import InvalidInput
from kvsite.openapi import errors
from kvsite.parsers import request_json
from kvsite.presence import watchers_cluster
from kvsite.uptime import server_uptime_s

from ..config import Config
from ..gossip import gossip_forget
from ..health import cluster_health, cluster_repair
from ..lifecycle import node_leave
from ..node import local_node, node_mode
from ..selectors import members_count, members_list
from ..transport import HttpTransport
from .serializers import (
    ForgetOutputSerializer,
    HealthOutputSerializer,
    MemberOutputSerializer,
    StatusOutputSerializer,
)

ADMIN_CLUSTER = "admin:cluster"


class HealthApi(APIView):
    """Liveness, with this node's id and mode. No credential needed."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(responses=HealthOutputSerializer, operation_id="health")
    def get(self, request):
        return Response({"status": "ok", "node_id": local_node().node_id, "mode": node_mode()})


class StatusApi(APIView):
    """This node's view of itself: keys, revision, Merkle root, members."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: StatusOutputSerializer, **errors(403)}, operation_id="status")
    def get(self, request):
        scope_check(request, READ)
        state = store_state()
        return Response(
            {
                "node_id": local_node().node_id,
                "mode": node_mode(),
                "version": kvsite.__version__,
                "uptime_s": round(server_uptime_s(), 3),
                "keys": live_key_count(),
                "revision": state.revision,
                "hlc": state.hlc,
                "merkle_root": state.merkle_root,
                "members": members_count(),
            }
        )


MEMBER_FIELDS = ("node_id", "url", "status", "joined_at", "last_seen", "incarnation")


def member_json(member) -> dict:
    return {name: getattr(member, name) for name in MEMBER_FIELDS}


class MembersApi(APIView):
    """Every member this node knows, itself included, as gossip last left them."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: MemberOutputSerializer(many=True), **errors(403)},
        operation_id="cluster_members",
    )
    def get(self, request):
        scope_check(request, READ)
        return Response([member_json(member) for member in members_list()])


class MemberApi(APIView):
    """`DELETE`: forget a dead or departed member now, here and on every live peer."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: ForgetOutputSerializer, **errors(403, 404, 409)},
        operation_id="cluster_member_forget",
    )
    def delete(self, request, node_id: str):
        scope_check(request, ADMIN_CLUSTER)
        config = Config.from_settings()
        report = gossip_forget(HttpTransport.from_config(config), node_id, config=config)
        return Response(
            {
                "node_id": report.node_id,
                "forgotten_by": report.forgotten_by,
                "unreachable": report.unreachable,
            }
        )


class LeaveApi(APIView):
    """This node leaves the cluster gracefully: peers learn it at once, it stops gossiping and
    exchanging data, and refuses client writes (mode `left`) until it is started again."""

    permission_classes = [AllowAny]

    @extend_schema(
        request=None,
        responses={200: MemberOutputSerializer, **errors(403)},
        operation_id="cluster_leave",
    )
    def post(self, request):
        scope_check(request, ADMIN_CLUSTER)
        config = Config.from_settings()
        me = node_leave(HttpTransport.from_config(config), wall_ms(), config=config)
        return Response(member_json(me))


class ClusterHealthApi(APIView):
    """Every node's Merkle root, keys, revision, replication lag per peer and last anti-entropy
    round, gathered from the live peers; `converged`: every member answered with one root."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, **errors(403)}, operation_id="cluster_health"
    )
    def get(self, request):
        scope_check(request, ADMIN_CLUSTER)
        return Response(cluster_health())


class ClusterRepairApi(APIView):
    """One anti-entropy round with the peer named, now: what differed and what moved."""

    permission_classes = [AllowAny]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, **errors(400, 403, 404, 503)},
        examples=[OpenApiExample("A peer", value={"peer": "node-2"}, request_only=True)],
        operation_id="cluster_repair",
    )
    def post(self, request):
        scope_check(request, ADMIN_CLUSTER)
        body = request_json(request)
        if not isinstance(body, dict) or set(body) != {"peer"}:
            raise InvalidInput('The body must be {"peer": node_id}.')
        return Response(cluster_repair(peer=body["peer"]))


class WatchersApi(APIView):
    """Every open watch and pub/sub subscription in the cluster (under `prefix`), gathered from
    every live node: who, what, since when."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("prefix", OpenApiTypes.STR, description="Only those under it.")
        ],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 403)},
        operation_id="watchers",
    )
    def get(self, request):
        scope_check(request, ADMIN_CLUSTER)
        prefix = request.query_params.get("prefix")
        if prefix is not None:
            prefix_validate(prefix)
        return Response(watchers_cluster(prefix=prefix))
