"""DRF policies for the internal API: only requests signed with the cluster secret get in."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from accounts.services import credential_refused
from kv.hlc import wall_ms

from ..node import local_node
from ..signing import SCHEME, BadSignature, SignedRequest, signature_remember, verify_request


class SignedNodeAuthentication(BaseAuthentication):
    """Accept a request signed by a cluster node for this node, fresh and not seen before; else
    401. A request signed for any node (`*`) only where the view sets `accepts_any_target`."""

    def authenticate(self, request) -> tuple[AnonymousUser, SignedRequest]:
        view = request.parser_context.get("view")
        window_ms = round(settings.KVS_SIGNATURE_WINDOW * 1000)
        try:
            signed = verify_request(
                settings.KVS_CLUSTER_SECRET,
                method=request.method,
                path=request.get_full_path(),
                body=request.body,
                headers=request.headers,
                now=wall_ms(),
                window_ms=window_ms,
                remember=lambda signature: signature_remember(signature, window_ms=window_ms),
                self_id=local_node().node_id,
                any_target=getattr(view, "accepts_any_target", False),
            )
        except BadSignature as error:
            refusal = AuthenticationFailed(f"Node signature refused: {error}.")
            credential_refused(reason=str(refusal.detail), kind="node-signature")
            raise refusal from None
        return AnonymousUser(), signed

    def authenticate_header(self, request) -> str:
        return SCHEME


class IsSignedNode(BasePermission):
    """Allow only requests that SignedNodeAuthentication verified."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, SignedRequest)
