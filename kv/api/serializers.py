"""Wire shapes of entries. Values are stored as JSON text and spliced in without re-encoding."""

import json
import math
import re

import orjson
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kvsite.exceptions import InvalidInput, TooLarge

from ..acl import mode_format
from ..models import Entry, EntryVersion

# A run of 19 digits may be an integer beyond 64 bits; such bodies take the exact (slow) parser.
_LONG_DIGITS = re.compile(rb"\d{19}")


def value_canonical(body: bytes, *, limit: int) -> str:
    """The request body as compact JSON text; raise InvalidInput or TooLarge."""
    if len(body) > limit:
        raise TooLarge(f"The value is {len(body)} bytes; at most {limit} are allowed.")
    if not body.strip():
        raise InvalidInput("The body is empty: send a JSON value.")
    try:
        if _LONG_DIGITS.search(body):
            raise ValueError("orjson turns integers beyond 64 bits into floats")
        text = orjson.dumps(orjson.loads(body)).decode()
    except (ValueError, TypeError):  # decode errors; the encoder refuses depth > 255 (TypeError)
        text = _value_canonical_slow(body)
    if len(text.encode()) > limit:
        raise TooLarge(f"The value is larger than {limit} bytes.")
    return text


def _value_canonical_slow(body: bytes) -> str:
    """The standard library's parser, for what orjson refuses or mangles but JSON allows (integers
    beyond 64 bits, which it would turn into floats; nesting deeper than 255)."""

    def no_constants(name):
        raise ValueError(f"{name} is not valid JSON")

    def finite(text):
        number = float(text)
        if math.isinf(number):
            raise ValueError(f"the number {text[:40]} is out of range")
        return number

    try:
        value = json.loads(body, parse_constant=no_constants, parse_float=finite)
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidInput(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise InvalidInput("The body is nested too deeply.") from None
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidInput("The body is not valid JSON: a string holds a lone surrogate.") from None
    return text


def entry_out(entry: Entry, *, with_value: bool = True) -> dict:
    """The GET shape of a live entry."""
    data = {
        "key": entry.key,
        "version": str(entry.version),
        "timestamp": entry.timestamp,
        "revision": entry.revision,
        "expires_at": entry.expires_at,
        "owner": entry.owner,
        "group": entry.group,
        "mode": entry.mode,
        "mode_string": mode_format(entry.mode),
    }
    if with_value:
        data["value"] = orjson.Fragment(entry.value)
    return data


def put_out(entry: Entry) -> dict:
    return {
        "key": entry.key,
        "version": str(entry.version),
        "timestamp": entry.timestamp,
        "revision": entry.revision,
        "expires_at": entry.expires_at,
    }


def version_out(version: Entry | EntryVersion) -> dict:
    return {
        "version": str(version.version),
        "timestamp": version.timestamp,
        "value": None
        if version.deleted or version.value is None
        else orjson.Fragment(version.value),
        "deleted": version.deleted,
        "origin": version.origin,
        "expires_at": version.expires_at,
    }


def meta_out(entry: Entry) -> dict:
    return {
        "key": entry.key,
        "owner": entry.owner,
        "group": entry.group,
        "mode": entry.mode,
        "mode_string": mode_format(entry.mode),
        "version": str(entry.version),
    }


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 4095},
            {"type": "string", "pattern": "^([c-][d-][w-][r-]){3}$"},
        ]
    }
)
class ModeField(serializers.JSONField):
    """A mode as given: 0..4095 or the 12-letter form (kv.acl.mode_parse reads it)."""


class EntryOutputSerializer(serializers.Serializer):
    """Documentation of the entry shape (the view renders `entry_out`)."""

    key = serializers.CharField()
    value = serializers.JSONField(required=False, help_text="Left out by lists with `keys=1`.")
    version = serializers.UUIDField()
    timestamp = serializers.IntegerField(help_text="Milliseconds since the epoch.")
    revision = serializers.IntegerField()
    expires_at = serializers.IntegerField(allow_null=True)
    owner = serializers.CharField(allow_null=True)
    group = serializers.CharField(allow_null=True)
    mode = serializers.IntegerField()
    mode_string = serializers.CharField()


class PutOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    version = serializers.UUIDField()
    timestamp = serializers.IntegerField()
    revision = serializers.IntegerField()
    expires_at = serializers.IntegerField(allow_null=True)


class PageOutputSerializer(serializers.Serializer):
    items = EntryOutputSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="The next page's `cursor`.")
    prefixes = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Only with `separator`."
    )


class DeletedOutputSerializer(serializers.Serializer):
    deleted = serializers.IntegerField(help_text="How many keys were deleted.")


class HistoryOutputSerializer(serializers.Serializer):
    class VersionSerializer(serializers.Serializer):
        version = serializers.UUIDField()
        timestamp = serializers.IntegerField()
        value = serializers.JSONField(allow_null=True, help_text="null for a tombstone.")
        deleted = serializers.BooleanField()
        origin = serializers.CharField(help_text="The node where the version was written.")
        expires_at = serializers.IntegerField(allow_null=True)

    key = serializers.CharField()
    versions = VersionSerializer(many=True)


class MetaOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    group = serializers.CharField(allow_null=True)
    mode = serializers.IntegerField()
    mode_string = serializers.CharField()
    version = serializers.UUIDField()


class MetaInputSerializer(serializers.Serializer):
    owner = serializers.CharField(required=False, allow_null=True, max_length=150)
    group = serializers.CharField(required=False, allow_null=True, max_length=150)
    mode = ModeField(required=False, help_text="0..4095 or e.g. 'cdwr--wr---r'.")
