"""Queries on values and their indexes: thin adapters over query.selectors and query.services."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import key_scope_check, scope_check
from accounts.scopes import ADMIN_ACL, READ
from kv.api.params import param_str
from kv.api.serializers import entry_out
from kv.callers import request_caller
from kvsite.exceptions import InvalidInput
from kvsite.openapi import errors, path_param
from kvsite.parsers import request_json

from .. import services
from ..language import query_parse
from ..models import BUILDING, FAILED, READY, ValueIndex
from ..selectors import entries_query

PREFIX_PARAM = path_param(
    "prefix", description="The key prefix the index covers, verbatim.", example="users/"
)
QUERY_EXAMPLE = {
    "prefix": "users/",
    "where": [
        {"path": "address.city", "op": "eq", "value": "Lyon"},
        {"path": "age", "op": "ge", "value": 30},
    ],
    "order_by": ["-age"],
    "limit": 10,
}


def index_out(index: ValueIndex) -> dict:
    """An index as the API shows it: `state` is `building` or `ready` (a build the database
    refused is still `building`, with `failed` true and the database's `error`)."""
    return {
        "name": index.name,
        "prefix": index.prefix,
        "path": index.path,
        "state": READY if index.state == READY else BUILDING,
        "failed": index.state == FAILED,
        "keys": index.keys,
        "built_seconds": index.built_seconds,
        "error": index.error or None,
    }


class QueryInputSerializer(serializers.Serializer):
    """Documentation of the query body (query.language parses it)."""

    prefix = serializers.CharField(required=False, help_text="Only keys under it.")
    where = serializers.ListField(
        child=serializers.DictField(), required=False, help_text='[{"path", "op", "value"}]'
    )
    order_by = serializers.ListField(child=serializers.CharField(), required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    cursor = serializers.CharField(required=False, allow_null=True)
    keys = serializers.BooleanField(required=False)


class QueryOutputSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.DictField())
    next_cursor = serializers.CharField(allow_null=True)
    index = serializers.CharField(allow_null=True, help_text="The index that served the query.")


class IndexOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField()
    path = serializers.CharField()
    state = serializers.ChoiceField(choices=["building", "ready"])
    failed = serializers.BooleanField(help_text="The database refused to build it (see error).")
    keys = serializers.IntegerField(allow_null=True, help_text="Keys covered when it was built.")
    error = serializers.CharField(allow_null=True)


class QueryApi(APIView):
    """Keys under a prefix whose values match every condition, in the order asked."""

    permission_classes = [AllowAny]

    @extend_schema(
        request=QueryInputSerializer,
        responses={200: QueryOutputSerializer, **errors(400, 403)},
        examples=[OpenApiExample("A query", value=QUERY_EXAMPLE, request_only=True)],
        operation_id="query",
    )
    def post(self, request):
        query = query_parse(request_json(request))
        key_scope_check(request, READ, query.prefix)
        page = entries_query(query=query, caller=request_caller(request))
        return Response(
            {
                "items": [entry_out(e, with_value=not query.keys) for e in page.items],
                "next_cursor": page.next_cursor,
                "index": page.index,
            }
        )


class IndexListApi(APIView):
    """Every declared index and its state."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: IndexOutputSerializer(many=True), **errors(403)},
        operation_id="index_list",
    )
    def get(self, request):
        scope_check(request, READ)
        return Response([index_out(i) for i in ValueIndex.objects.order_by("prefix", "path")])


class IndexApi(APIView):
    """Declare (PUT `{"path"}`) or forget (DELETE `?path=`) the index of a path under a prefix."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        path = serializers.CharField(help_text="A dot path into the values, e.g. address.city.")

    @extend_schema(
        parameters=[PREFIX_PARAM],
        request=InputSerializer,
        responses={
            200: OpenApiResponse(IndexOutputSerializer, description="Already declared."),
            201: OpenApiResponse(IndexOutputSerializer, description="Declared; building."),
            **errors(400, 403),
        },
        operation_id="index_put",
    )
    def put(self, request, prefix=""):
        scope_check(request, ADMIN_ACL)
        data = self.InputSerializer(data=request_json(request))
        data.is_valid(raise_exception=True)
        index, created = services.index_put(prefix=prefix, path=data.validated_data["path"])
        return Response(index_out(index), status=201 if created else 200)

    @extend_schema(
        parameters=[
            PREFIX_PARAM,
            OpenApiParameter("path", str, required=True, description="The indexed path."),
        ],
        responses={204: OpenApiResponse(description="Deleted."), **errors(400, 403, 404)},
        operation_id="index_delete",
    )
    def delete(self, request, prefix=""):
        scope_check(request, ADMIN_ACL)
        path = param_str(request, "path")
        if not path:
            raise InvalidInput("Name the indexed path: ?path=address.city")
        services.index_delete(prefix=prefix, path=path)
        return Response(status=204)
