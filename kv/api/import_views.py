"""`POST /api/v1/import`: a batch of import lines written through kv.importing."""

import json

import orjson
from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import key_scope_check, request_token
from accounts.scopes import WRITE
from kvsite.exceptions import InvalidInput, KvsError, TooLarge
from kvsite.openapi import errors
from kvsite.parsers import request_json

from ..acl import mode_parse
from ..callers import request_caller
from ..importing import REFUSED, WRITTEN, entries_import, item_parse

MAX_ITEMS = 1000


def value_text(value: object) -> str:
    """A decoded JSON value as compact JSON text (integers of any size kept exact); TooLarge
    past KVS_MAX_VALUE_BYTES."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    limit = settings.KVS_MAX_VALUE_BYTES
    if len(text.encode()) > limit:
        raise TooLarge(f"The value is larger than {limit} bytes.")
    return text


class ImportItemSerializer(serializers.Serializer):
    """Documentation of one item (the view reads items with kv.importing.item_parse)."""

    key = serializers.CharField()
    value = serializers.JSONField()
    expires_at = serializers.IntegerField(required=False, allow_null=True)
    owner = serializers.CharField(required=False, allow_null=True)
    group = serializers.CharField(required=False, allow_null=True)
    mode = serializers.JSONField(required=False)


class ImportInputSerializer(serializers.Serializer):
    items = ImportItemSerializer(many=True)


class ImportResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["written", "skipped", "refused"])
    detail = serializers.CharField(required=False, help_text="Why skipped or refused.")
    code = serializers.CharField(required=False, help_text="Refused: the error code.")
    version = serializers.UUIDField(required=False)
    revision = serializers.IntegerField(required=False)


class ImportOutputSerializer(serializers.Serializer):
    results = ImportResultSerializer(many=True, help_text="One per item, in order.")
    written = serializers.IntegerField()
    skipped = serializers.IntegerField()
    refused = serializers.IntegerField()


class ImportApi(APIView):
    """Write up to 1000 entries at once (what `kvs import` sends), each checked as a PUT is."""

    permission_classes = [AllowAny]

    @extend_schema(
        request=ImportInputSerializer,
        responses={200: ImportOutputSerializer, **errors(400, 403, 413, 503)},
        examples=[
            OpenApiExample(
                "Two lines",
                request_only=True,
                value={
                    "items": [
                        {"key": "config/a", "value": 1},
                        {"key": "config/b", "value": {"x": True}, "mode": 3889},
                    ]
                },
            )
        ],  # fmt: skip
        operation_id="kv_import",
        description="Each item is written as the newest version of its key unless the stored "
        "one already equals it (value, expires_at, and the owner, group and mode it gives): "
        "then it is skipped. An item refused (key, token prefix, ACL, schema, size) is reported "
        "with its code and does not stop the others.",
    )
    def post(self, request):
        key_scope_check(request, WRITE)
        body = request_json(request)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise InvalidInput('Send {"items": [{"key", "value", ...}, ...]}.')
        if len(items) > MAX_ITEMS:
            raise InvalidInput(f"At most {MAX_ITEMS} items per request.")
        token = request_token(request)
        parsed, results = [], [None] * len(items)
        for index, data in enumerate(items):
            try:
                parsed.append((index, item_parse(data, mode_parse=mode_parse,
                                                 value_text=value_text)))  # fmt: skip
            except KvsError as error:
                results[index] = {"status": REFUSED, "code": error.code, "detail": error.detail}
        outcomes = entries_import(
            [item for _, item in parsed],
            caller=request_caller(request),
            prefix=token.prefix if token is not None else None,
        )
        for (index, _), outcome in zip(parsed, outcomes, strict=True):
            result = {"status": outcome.status}
            if outcome.status == WRITTEN:
                result.update(version=str(outcome.entry.version), revision=outcome.entry.revision)
            elif outcome.detail:
                result["detail"] = outcome.detail
            if outcome.code:
                result["code"] = outcome.code
            results[index] = result
        counts = {status: 0 for status in ("written", "skipped", "refused")}
        for result in results:
            counts[result["status"]] += 1
        return Response({"results": results, **counts})
