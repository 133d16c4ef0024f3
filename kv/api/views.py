"""The key API: thin adapters from HTTP to kv.services and kv.selectors."""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import key_scope_check
from accounts.scopes import DELETE, READ, WRITE
from kvsite.exceptions import InvalidInput
from kvsite.parsers import request_json

from .. import selectors, services
from ..acl import mode_parse
from ..callers import request_caller
from ..keys import ttl_parse
from .params import param_flag, param_int, param_str
from .serializers import (
    EntryOutputSerializer,
    HistoryOutputSerializer,
    MetaInputSerializer,
    MetaOutputSerializer,
    PageOutputSerializer,
    PutOutputSerializer,
    entry_out,
    meta_out,
    put_out,
    value_canonical,
    version_out,
)

KEY_PARAM = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH)


class KeyApi(APIView):
    """Read, write and delete one key."""

    permission_classes = [AllowAny]  # key_scope_check decides, per method

    @extend_schema(
        parameters=[KEY_PARAM, OpenApiParameter("raw", OpenApiTypes.BOOL)],
        responses=EntryOutputSerializer,
    )
    def get(self, request, key):
        key_scope_check(request, READ, key)
        raw = param_flag(request, "raw")
        entry = selectors.entry_get(key=key, caller=request_caller(request))
        if raw:
            return HttpResponse(entry.value, content_type="application/json")
        return Response(entry_out(entry))

    def head(self, request, key):
        key_scope_check(request, READ, key)
        selectors.entry_get(key=key, caller=request_caller(request))
        return HttpResponse(status=200, content_type="application/json")

    @extend_schema(
        parameters=[
            KEY_PARAM,
            OpenApiParameter("ttl", OpenApiTypes.STR, description="Seconds, or 90s / 5m / 2h."),
            OpenApiParameter("cas", OpenApiTypes.STR, description="Expected version; 0 = absent."),
        ],
        request=OpenApiTypes.ANY,
        responses={200: PutOutputSerializer, 201: PutOutputSerializer},
    )
    def put(self, request, key):
        key_scope_check(request, WRITE, key)
        ttl_raw = param_str(request, "ttl")
        ttl = ttl_parse(ttl_raw) if ttl_raw is not None else None
        cas = param_str(request, "cas")
        value = value_canonical(request.body, limit=settings.KVS_MAX_VALUE_BYTES)
        entry, created = services.entry_put(
            key=key, value=value, caller=request_caller(request), ttl=ttl, cas=cas
        )
        return Response(put_out(entry), status=201 if created else 200)

    @extend_schema(
        parameters=[
            KEY_PARAM,
            OpenApiParameter("cas", OpenApiTypes.STR),
            OpenApiParameter("recurse", OpenApiTypes.BOOL),
        ],
        responses={204: None, 200: OpenApiTypes.OBJECT},
    )
    def delete(self, request, key):
        key_scope_check(request, DELETE, key)
        cas = param_str(request, "cas")
        if param_flag(request, "recurse"):
            if cas is not None:
                raise InvalidInput("cas cannot be combined with recurse.")
            deleted = services.entry_delete_recurse(key=key, caller=request_caller(request))
            return Response({"deleted": deleted})
        services.entry_delete(key=key, caller=request_caller(request), cas=cas)
        return Response(status=204)


class KeyListApi(APIView):
    """List keys under a prefix, in key order, a page at a time."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("prefix", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("keys", OpenApiTypes.BOOL, description="Leave values out."),
            OpenApiParameter("separator", OpenApiTypes.STR, description="Fold deeper keys."),
        ],
        responses=PageOutputSerializer,
        operation_id="kv_list",
    )
    def get(self, request):
        prefix = param_str(request, "prefix") or ""
        key_scope_check(request, READ, prefix)
        separator = param_str(request, "separator")
        page = selectors.entries_under(
            prefix=prefix,
            limit=param_int(request, "limit", default=selectors.DEFAULT_LIST_LIMIT),
            cursor=param_str(request, "cursor") or None,
            separator=separator,
            caller=request_caller(request),
        )
        with_value = not param_flag(request, "keys")
        data = {
            "items": [entry_out(entry, with_value=with_value) for entry in page.items],
            "next_cursor": page.next_cursor,
        }
        if separator is not None:
            data["prefixes"] = page.prefixes
        return Response(data)


class HistoryApi(APIView):
    """The current version of a key and its previous ones, newest first."""

    permission_classes = [AllowAny]

    @extend_schema(parameters=[KEY_PARAM], responses=HistoryOutputSerializer)
    def get(self, request, key):
        key_scope_check(request, READ, key)
        entry, previous = selectors.entry_history(key=key, caller=request_caller(request))
        return Response({"key": key, "versions": [version_out(v) for v in [entry, *previous]]})


class MetaApi(APIView):
    """Owner, group and mode of one key."""

    permission_classes = [AllowAny]

    @extend_schema(parameters=[KEY_PARAM], responses=MetaOutputSerializer)
    def get(self, request, key):
        key_scope_check(request, READ, key)
        return Response(meta_out(selectors.entry_get(key=key, caller=request_caller(request))))

    @extend_schema(
        parameters=[KEY_PARAM], request=MetaInputSerializer, responses=MetaOutputSerializer
    )
    def put(self, request, key):
        key_scope_check(request, WRITE, key)
        caller = request_caller(request)
        if caller.username is None and not caller.bypass:
            raise NotAuthenticated()  # anonymous callers own nothing, not even owner-less keys
        data = MetaInputSerializer(data=request_json(request))
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if not values:
            raise InvalidInput("Give at least one of owner, group, mode.")
        if "mode" in values:
            values["mode"] = mode_parse(values["mode"])
        entry = services.entry_meta_set(key=key, fields=set(values), caller=caller, **values)
        return Response(meta_out(entry))
