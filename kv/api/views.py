"""The key API: thin adapters from HTTP to kv.services and kv.selectors."""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import key_scope_check
from accounts.scopes import DELETE, READ, WRITE
from kvsite.exceptions import InvalidInput
from kvsite.openapi import errors, path_param
from kvsite.parsers import request_json

from .. import selectors, services
from ..acl import mode_parse
from ..callers import request_caller
from ..keys import ttl_parse
from .params import param_flag, param_int, param_str
from .serializers import (
    DeletedOutputSerializer,
    HistoryOutputSerializer,
    MetaInputSerializer,
    MetaOutputSerializer,
    PageOutputSerializer,
    PutOutputSerializer,
    RevertInputSerializer,
    TtlInputSerializer,
    entry_out,
    meta_out,
    put_out,
    value_canonical,
    version_out,
)

KEY_DESCRIPTION = "A `/`-separated path of 1-1024 bytes of UTF-8; a bad key answers 400."
KEY_PARAM = path_param("key", description=KEY_DESCRIPTION, example="config/app")
DELETED_KEY_PARAM = path_param("key", description=KEY_DESCRIPTION, example="config/old")
CAS_PARAM = OpenApiParameter(
    "cas",
    {"anyOf": [{"type": "string", "enum": ["0"]}, {"type": "string", "format": "uuid"}]},
    description="The expected current version id; `0`: only if absent.",
)
# With ?raw=1 a GET answers the value alone, which may be any JSON value.
ENTRY_OR_VALUE = {
    "anyOf": [
        {"$ref": "#/components/schemas/EntryOutput"},
        {"description": "With `raw=1`: the value alone, any JSON value."},
    ]
}


class KeyApi(APIView):
    """Read, write and delete one key."""

    permission_classes = [AllowAny]  # key_scope_check decides, per method

    @extend_schema(
        parameters=[
            KEY_PARAM,
            OpenApiParameter("raw", OpenApiTypes.BOOL, description="Answer the value alone."),
        ],
        responses={200: ENTRY_OR_VALUE, **errors(400, 403, 404)},
        operation_id="kv_get",
    )
    def get(self, request, key):
        key_scope_check(request, READ, key)
        raw = param_flag(request, "raw")
        entry = selectors.entry_get(key=key, caller=request_caller(request))
        if raw:
            return HttpResponse(entry.value, content_type="application/json")
        return Response(entry_out(entry))

    @extend_schema(
        parameters=[KEY_PARAM],
        responses={200: None, **errors(400, 403, 404)},
        operation_id="kv_head",
        description="Whether the key exists: 200, or 404.",
    )
    def head(self, request, key):
        key_scope_check(request, READ, key)
        selectors.entry_get(key=key, caller=request_caller(request))
        return HttpResponse(status=200, content_type="application/json")

    @extend_schema(
        parameters=[
            KEY_PARAM,
            OpenApiParameter(
                "ttl",
                {"type": "string", "pattern": "^[0-9]{1,12}[smhd]?$"},
                description="Seconds, or a number with s, m, h or d; at most 100 years.",
            ),
            CAS_PARAM,
        ],
        request=OpenApiTypes.ANY,
        responses={
            200: OpenApiResponse(PutOutputSerializer, description="Replaced."),
            201: OpenApiResponse(PutOutputSerializer, description="Created."),
            **errors(400, 403, 409, 413, 503),
        },
        examples=[OpenApiExample("A value", value={"debug": True}, request_only=True)],
        operation_id="kv_put",
        description="The body is the value: any JSON value of at most KVS_MAX_VALUE_BYTES "
        "(default 1 MiB; larger: 413).",
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
        parameters=[KEY_PARAM],
        request=TtlInputSerializer,
        responses={
            200: OpenApiResponse(PutOutputSerializer, description="Refreshed."),
            **errors(400, 403, 404, 503),
        },
        examples=[OpenApiExample("Five minutes", value={"ttl": "5m"}, request_only=True)],
        operation_id="kv_ttl_refresh",
        description="A new version with the same value and a new expiry (`null`: none).",
    )
    def patch(self, request, key):
        key_scope_check(request, WRITE, key)
        body = request_json(request)
        if not isinstance(body, dict) or set(body) != {"ttl"}:
            raise InvalidInput('The body must be {"ttl": "5m"} (or {"ttl": null} to clear it).')
        ttl = body["ttl"]
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (str, int)):
                raise InvalidInput("ttl must be seconds, a string such as 5m, or null.")
            ttl = ttl_parse(str(ttl))
        entry = services.entry_ttl_set(key=key, ttl=ttl, caller=request_caller(request))
        return Response(put_out(entry))

    @extend_schema(
        parameters=[
            DELETED_KEY_PARAM,
            CAS_PARAM,
            OpenApiParameter(
                "recurse", OpenApiTypes.BOOL, description="Also every key under `{key}/`."
            ),
        ],
        responses={
            204: OpenApiResponse(description="Deleted."),
            200: OpenApiResponse(DeletedOutputSerializer, description="With `recurse=1`."),
            **errors(400, 403, 404, 409, 503),
        },
        operation_id="kv_delete",
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
            OpenApiParameter(
                "prefix",
                OpenApiTypes.STR,
                description="Only keys under it.",
                examples=[OpenApiExample("A prefix", value="config/")],
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": selectors.MAX_LIST_LIMIT},
                description=f"Items per page (default {selectors.DEFAULT_LIST_LIMIT}).",
            ),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="A page's `next_cursor`."),
            OpenApiParameter("keys", OpenApiTypes.BOOL, description="Leave values out."),
            OpenApiParameter(
                "separator",
                OpenApiTypes.STR,
                description="Only keys directly under the prefix; deeper ones fold into "
                "`prefixes`.",
            ),
        ],
        responses={200: PageOutputSerializer, **errors(400, 403)},
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

    @extend_schema(
        parameters=[KEY_PARAM],
        responses={200: HistoryOutputSerializer, **errors(400, 403, 404)},
        operation_id="history_get",
    )
    def get(self, request, key):
        key_scope_check(request, READ, key)
        entry, previous = selectors.entry_history(key=key, caller=request_caller(request))
        return Response({"key": key, "versions": [version_out(v) for v in [entry, *previous]]})


class HistoryRevertApi(APIView):
    """Write a version's value again, as the newest version of the key."""

    permission_classes = [AllowAny]  # key_scope_check decides

    @extend_schema(
        parameters=[KEY_PARAM],
        request=RevertInputSerializer,
        responses={
            200: OpenApiResponse(PutOutputSerializer, description="Replaced."),
            201: OpenApiResponse(PutOutputSerializer, description="Created (the key was deleted)."),
            **errors(400, 403, 404, 503),
        },
        operation_id="history_revert",
        description="Writes the value the key had at `version` as its newest version, through "
        "the checks of a PUT (ACL, schema, audit, replication) and with its answer. The new "
        "version has no TTL. Reverting to a deletion answers 400: delete the key instead.",
    )
    def post(self, request, key):
        key_scope_check(request, WRITE, key)
        data = request_json(request)
        if not isinstance(data, dict) or set(data) != {"version"}:
            raise InvalidInput('The body is {"version": "<a version id from the history>"}.')
        entry, created = services.entry_revert(
            key=key, version=data["version"], caller=request_caller(request)
        )
        return Response(put_out(entry), status=201 if created else 200)


class MetaApi(APIView):
    """Owner, group and mode of one key."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[KEY_PARAM],
        responses={200: MetaOutputSerializer, **errors(400, 403, 404)},
        operation_id="meta_get",
    )
    def get(self, request, key):
        key_scope_check(request, READ, key)
        return Response(meta_out(selectors.entry_get(key=key, caller=request_caller(request))))

    @extend_schema(
        parameters=[KEY_PARAM],
        request=MetaInputSerializer,
        responses={200: MetaOutputSerializer, **errors(400, 403, 404, 503)},
        operation_id="meta_put",
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
