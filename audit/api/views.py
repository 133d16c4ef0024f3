"""The audit API: pages of events and a check of the chain (scope `admin:audit`)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import scope_check
from accounts.scopes import ADMIN_AUDIT
from kv.api.params import param_int, param_str
from kvsite.exceptions import InvalidInput
from kvsite.openapi import errors

from ..chain import moment_of, ms_of
from ..models import AuditEvent
from ..selectors import EventFilter, chain_verify, events_page

MAX_LIMIT = 1000
MAX_MS = 253402300799999  # 9999-12-31, the last moment a datetime holds


def event_out(event: AuditEvent) -> dict:
    return {
        "seq": event.seq,
        "at": ms_of(event.at),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "node": event.node,
        "remote": event.remote,
        "credential": event.credential,
        "detail": event.detail,
        "hash": event.hash,
    }


class EventOutputSerializer(serializers.Serializer):
    """Documentation of an event's shape (the view renders `event_out`)."""

    seq = serializers.IntegerField()
    at = serializers.IntegerField(help_text="Milliseconds since the epoch.")
    actor = serializers.CharField(allow_null=True, help_text="A username, or null.")
    action = serializers.CharField(help_text="e.g. `kv.put`, `token.revoke`, `login.failed`.")
    target = serializers.CharField(help_text="The key, username, group, token id or prefix.")
    node = serializers.CharField()
    remote = serializers.CharField(allow_null=True, help_text="The client's address.")
    credential = serializers.CharField(allow_null=True, help_text="Token id, jwt:<jti>, session.")
    detail = serializers.JSONField()
    hash = serializers.CharField()


class EventPageSerializer(serializers.Serializer):
    events = EventOutputSerializer(many=True)
    next = serializers.IntegerField(allow_null=True, help_text="The `after` of the next page.")


def _moment_param(request, name: str):
    ms = param_int(request, name, default=-1)
    if ms == -1:
        return None
    if not 0 <= ms <= MAX_MS:
        raise InvalidInput(f"Query parameter {name!r} is milliseconds since the epoch.")
    return moment_of(ms)


def _filter(request) -> EventFilter:
    return EventFilter(
        actor=param_str(request, "actor") or None,
        action=param_str(request, "action") or None,
        prefix=param_str(request, "prefix") or None,
        since=_moment_param(request, "since"),
        until=_moment_param(request, "until"),
    )


class AuditListApi(APIView):
    """The audit trail, oldest first, a page at a time."""

    @extend_schema(
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="Events after this seq."),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"1..{MAX_LIMIT} (100)."),
            OpenApiParameter("actor", OpenApiTypes.STR, description="Only this username's."),
            OpenApiParameter("action", OpenApiTypes.STR, description="Only this action."),
            OpenApiParameter("prefix", OpenApiTypes.STR, description="Targets starting so."),
            OpenApiParameter("since", OpenApiTypes.INT, description="At or after (ms)."),
            OpenApiParameter("until", OpenApiTypes.INT, description="Before (ms)."),
        ],
        responses={200: EventPageSerializer, **errors(400, 401, 403)},
        operation_id="audit_list",
    )
    def get(self, request):
        scope_check(request, ADMIN_AUDIT)
        after = param_int(request, "after", default=0)
        limit = param_int(request, "limit", default=100)
        if after < 0:
            raise InvalidInput("Query parameter 'after' is a seq (0 or more).")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"Query parameter 'limit' must be from 1 to {MAX_LIMIT}.")
        events, following = events_page(after=after, limit=limit, where=_filter(request))
        return Response({"events": [event_out(e) for e in events], "next": following})


class VerdictSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Events that verified before the first bad.")
    first_bad = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    head = serializers.JSONField(help_text='{"seq", "hash"}: note it elsewhere to catch a cut.')
    anchor = serializers.IntegerField(help_text="Seq of the last pruned event (0: none).")


class AuditVerifyApi(APIView):
    """Check the whole chain: the first changed, removed or reordered event, if any."""

    @extend_schema(
        responses={200: VerdictSerializer, **errors(401, 403)}, operation_id="audit_verify"
    )
    def get(self, request):
        scope_check(request, ADMIN_AUDIT)
        verdict = chain_verify()
        return Response(
            {
                "ok": verdict.ok,
                "checked": verdict.checked,
                "first_bad": verdict.first_bad,
                "reason": verdict.reason,
                "head": {"seq": verdict.head_seq, "hash": verdict.head_hash},
                "anchor": verdict.anchor_seq,
            }
        )
