"""Node health and status."""

import time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

import kvsite
from accounts.permissions import scope_check
from accounts.scopes import READ
from kv.selectors import live_key_count, store_state

from ..node import local_node, node_mode

STARTED = time.monotonic()


class HealthApi(APIView):
    """Liveness, with this node's id and mode. No credential needed."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="health")
    def get(self, request):
        return Response({"status": "ok", "node_id": local_node().node_id, "mode": node_mode()})


class StatusApi(APIView):
    """This node's view of itself: keys, revision, Merkle root, members."""

    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="status")
    def get(self, request):
        scope_check(request, READ)
        state = store_state()
        return Response(
            {
                "node_id": local_node().node_id,
                "mode": node_mode(),
                "version": kvsite.__version__,
                "uptime_s": round(time.monotonic() - STARTED, 3),
                "keys": live_key_count(),
                "revision": state.revision,
                "hlc": state.hlc,
                "merkle_root": state.merkle_root,
                "members": {"alive": 1, "suspect": 0, "dead": 0, "left": 0},
            }
        )
