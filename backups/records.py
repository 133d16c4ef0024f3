"""What a backup holds, kind by kind: the tables, the fields of each, and how a row becomes a
record and back. Records use natural keys (usernames, group names), never database ids, so a
backup restores into any fresh database of the same schema."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import models

from accounts.models import ApiToken, User
from cluster.models import Member, PeerCursor
from kv.models import AclRule, Entry, EntryVersion, PrefixSchema


@dataclass(frozen=True)
class Kind:
    """One kind of record: its model and the fields a record carries (attribute names)."""

    name: str
    model: type[models.Model]
    fields: tuple[str, ...]
    order: str = "pk"  # keyset order of the snapshot's chunked reads (a unique column)
    optional: frozenset[str] = frozenset()  # fields older backups lack (restored as null)


_ENTRY_FIELDS = (
    "key", "value", "version", "hlc", "origin", "origin_joined_at", "deleted", "expires_at",
    "owner", "group", "mode", "revision", "actor",
)  # fmt: skip
_HISTORY_FIELDS = (
    "key", "value", "version", "hlc", "origin", "deleted", "expires_at", "owner", "group", "mode",
    "actor",
)  # fmt: skip
_ACTOR = frozenset({"actor"})  # backups made before versions recorded their writer lack it
_USER_FIELDS = (
    "username", "password", "email", "first_name", "last_name", "is_superuser", "is_staff",
    "is_active", "date_joined", "last_login",
)  # fmt: skip
_TOKEN_FIELDS = (
    "id", "name", "secret_hash", "scopes", "prefix", "created_at", "expires_at", "revoked_at",
)  # fmt: skip
_MEMBER_FIELDS = (
    "node_id", "url", "joined_at", "incarnation", "heartbeat", "status", "last_seen",
    "status_changed_at",
)  # fmt: skip

# Users carry `groups` (names) and tokens `user` (a username) besides these fields.
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("group", Group, ("name",)),
        Kind("user", User, _USER_FIELDS),
        Kind("token", ApiToken, _TOKEN_FIELDS),
        Kind("rule", AclRule, ("prefix", "owner", "group", "mode", "updated_at")),
        Kind("schema", PrefixSchema, ("prefix", "schema", "updated_at")),
        Kind("entry", Entry, _ENTRY_FIELDS, order="key", optional=_ACTOR),
        Kind("history", EntryVersion, _HISTORY_FIELDS, optional=_ACTOR),
        Kind("member", Member, _MEMBER_FIELDS, order="node_id"),
        Kind("cursor", PeerCursor, ("node_id", "revision", "updated_at"), order="node_id"),
    )
}


def to_record(kind: Kind, values: tuple) -> dict:
    """A row's values (in `kind.fields` order) as a JSON-ready record."""
    record = dict(zip(kind.fields, values, strict=True))
    for name, value in record.items():
        if hasattr(value, "isoformat"):
            record[name] = value.isoformat()
        elif name == "version":
            record[name] = str(value)
    return record


def field_values(kind: Kind, record: dict) -> list:
    """A record's fields as database parameters, in `kind.fields` order (KeyError if missing)."""
    from django.db import connection

    values = []
    for name in kind.fields:
        field = kind.model._meta.get_field(name)
        value = record.get(name) if name in kind.optional else record[name]
        if value is not None and isinstance(
            field, models.DateTimeField | models.UUIDField | models.JSONField
        ):
            value = field.get_db_prep_save(field.to_python(value), connection)
        values.append(value)
    return values
