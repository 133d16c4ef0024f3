"""Wire shapes of entries. Values are stored as JSON text and spliced in without re-encoding."""

import json

import orjson
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


class EntryOutputSerializer(serializers.Serializer):
    """Documentation of the entry shape (the view renders `entry_out`)."""

    key = serializers.CharField()
    value = serializers.JSONField()
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
    next_cursor = serializers.CharField(allow_null=True)
    prefixes = serializers.ListField(child=serializers.CharField(), required=False)


class HistoryOutputSerializer(serializers.Serializer):
    class VersionSerializer(serializers.Serializer):
        version = serializers.UUIDField()
        timestamp = serializers.IntegerField()
        value = serializers.JSONField(allow_null=True)
        deleted = serializers.BooleanField()

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
    mode = serializers.JSONField(required=False, help_text="0..4095 or e.g. 'cdwr--wr---r'.")
