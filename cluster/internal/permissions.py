"""Who may exchange data with this node over the internal API: current members only."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from kvsite.exceptions import Forbidden

from ..selectors import peer_refusal


class NotAMember(Forbidden):
    code = "not_a_member"


class NodeLeft(Forbidden):
    code = "left"


REFUSALS = {"not_a_member": NotAMember, "left": NodeLeft}


class IsMemberNode(BasePermission):
    """Allow a signed request only from a member (alive, suspect or dead here), and only while
    this node is a member itself; else 403. Gossip does without: it is how a node joins."""

    def has_permission(self, request, view) -> bool:
        refusal = peer_refusal(request.auth.node_id)
        if refusal is not None:
            code, detail = refusal
            raise REFUSALS[code](detail)
        return True
