"""Wire shapes of entries. Values are stored as JSON text and spliced in without re-encoding."""

import json

import orjson
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kvsite.exceptions import TooLarge
from kvsite.parsers import json_parse

from ..acl import mode_format
from ..models import Entry, EntryVersion


def value_canonical(body: bytes, *, limit: int) -> str:
    """The request body as compact JSON text (kvsite.parsers' rules); raise InvalidInput or
    TooLarge."""
    if len(body) > limit:
        raise TooLarge(f"The value is {len(body)} bytes; at most {limit} are allowed.")
    value = json_parse(body)
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > limit:
        raise TooLarge(f"The value is larger than {limit} bytes.")
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
        "hlc": entry.hlc,  # the version order's clock, as in watch events
        "revision": entry.revision,
        "expires_at": entry.expires_at,
    }


def version_out(version: Entry | EntryVersion) -> dict:
    return {
        "version": str(version.version),
        "timestamp": version.timestamp,
        "hlc": version.hlc,
        "value": None
        if version.deleted or version.value is None
        else orjson.Fragment(version.value),
        "deleted": version.deleted,
        "origin": version.origin,
        "node": version.origin,
        "actor": version.actor,
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
    hlc = serializers.IntegerField(
        help_text="The version's hybrid logical clock: versions of a key order by it."
    )
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
        hlc = serializers.IntegerField(help_text="The version order's clock.")
        value = serializers.JSONField(allow_null=True, help_text="null for a tombstone.")
        deleted = serializers.BooleanField()
        origin = serializers.CharField(help_text="The node where the version was written.")
        node = serializers.CharField(help_text="The node where the version was written.")
        actor = serializers.CharField(
            allow_null=True,
            help_text="The username that wrote it; null for an expiry or a system write; "
            '"unknown" when the writer\'s node did not say (an earlier release).',
        )
        expires_at = serializers.IntegerField(allow_null=True)

    key = serializers.CharField()
    versions = VersionSerializer(many=True)


class RevertInputSerializer(serializers.Serializer):
    """The body of a revert (documentation only; the view checks the body itself)."""

    version = serializers.UUIDField(help_text="The version id to write again, from the history.")


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


class TtlInputSerializer(serializers.Serializer):
    """The body of a TTL refresh (documentation only; the view checks the body itself)."""

    ttl = serializers.CharField(
        allow_null=True, help_text="Seconds, or a number with s, m, h or d; null clears it."
    )
