"""Security records travel between nodes as reserved entries.

Users, groups, API tokens (hashes only), ACL rules, schemas and value indexes are mirrored into
entries under `_sys/<kind>/<name>` whenever they change on this node, so push replication and Merkle
anti-entropy carry them like any key, last writer wins per record. When such an entry arrives
from another node it is materialized back into its table. Records that depend on others (a token
on its user, a membership on its group) are materialized again when what they need arrives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote

import orjson
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils.dateparse import parse_datetime
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from accounts.models import ApiToken, User
from kv.keys import prefix_successor
from kv.locking import store_write_lock
from kv.models import AclRule, Entry, PrefixSchema
from kv.services import SYSTEM_PREFIX, system_record_put
from kv.signals import Change, entries_applied
from query.models import ValueIndex, index_name

USERS, GROUPS, TOKENS, ACL, SCHEMAS = "users", "groups", "tokens", "acl", "schemas"
INDEXES = "indexes"
RECORD_KINDS = frozenset((USERS, GROUPS, TOKENS, ACL, SCHEMAS, INDEXES))
_USER_FIELDS = (
    "email", "password", "first_name", "last_name", "is_superuser", "is_staff", "is_active"
)  # fmt: skip
_local = threading.local()


def record_key(kind: str, name: str) -> str:
    """The entry key of a record; names are percent-encoded (ACL prefixes may end in '/')."""
    return f"{SYSTEM_PREFIX}{kind}/{quote(name, safe='')}"


def _parse_key(key: str) -> tuple[str, str]:
    kind, _, name = key[len(SYSTEM_PREFIX) :].partition("/")
    return kind, unquote(name)


@contextmanager
def _materializing() -> Iterator[None]:
    """While set, model changes come from another node and are not mirrored back."""
    _local.active = True
    try:
        yield
    finally:
        _local.active = False


def _mirroring() -> bool:
    return not getattr(_local, "active", False)


def record_change_local() -> bool:
    """Whether a security record changing now is changed by this node (not materialized from a
    peer's record): the audit trail records only those."""
    return _mirroring()


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# --- Model → record ------------------------------------------------------------------------------


def user_record(user: User) -> dict:
    record = {field: getattr(user, field) for field in _USER_FIELDS}
    record["username"] = user.username
    record["date_joined"] = _iso(user.date_joined)
    record["groups"] = sorted(user.groups.values_list("name", flat=True))
    return record


def token_record(token: ApiToken) -> dict:
    return {
        "id": token.id,
        "user": token.user.username,
        "name": token.name,
        "secret_hash": token.secret_hash,
        "scopes": token.scopes,
        "prefix": token.prefix,
        "created_at": _iso(token.created_at),
        "expires_at": _iso(token.expires_at),
        "revoked_at": _iso(token.revoked_at),
    }


def _publish(kind: str, name: str, record: dict | None) -> None:
    value = None if record is None else orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
    system_record_put(key=record_key(kind, name), value=value)


def _on_user_saved(sender, instance: User, **kwargs) -> None:
    if _mirroring():
        _publish(USERS, instance.username, user_record(instance))


def _on_user_deleted(sender, instance: User, **kwargs) -> None:
    if _mirroring():
        _publish(USERS, instance.username, None)


def _on_membership_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if not _mirroring():
        return
    if reverse and action == "pre_clear":  # Django names no users for a group's clear: note them
        instance._kvs_cleared = list(instance.user_set.values_list("pk", flat=True))
        return
    if not action.startswith("post_"):
        return
    if reverse:
        pks = getattr(instance, "_kvs_cleared", []) if action == "post_clear" else pk_set or []
        users = User.objects.filter(pk__in=pks)
    else:
        users = [instance]
    for user in users:
        _publish(USERS, user.username, user_record(user))


def _group_in_records(old: str, new: str | None) -> None:
    """Replace the group `old` by `new` (None: remove it) in every user record listing it.

    Group deletion (and renaming) removes memberships without Django's m2m signal, and
    peers materialize memberships from user records: a record still listing the group would
    make its user a member again when a group of that name is created anywhere. The record is
    edited as stored, so its other fields stay as the cluster last wrote them."""
    prefix = record_key(USERS, "")
    listing = Entry.objects.filter(
        key__gte=prefix,
        key__lt=prefix_successor(prefix),
        deleted=False,
        value__contains=orjson.dumps(old).decode(),
    ).values_list("key", "value")
    for key, value in listing:
        record = orjson.loads(value)
        if old not in record.get("groups", []):
            continue
        groups = [g for g in record["groups"] if g != old]
        if new is not None and new not in groups:
            groups.append(new)
        _publish(USERS, _parse_key(key)[1], {**record, "groups": sorted(groups)})


def _on_group_changing(sender, instance: Group, **kwargs) -> None:
    """Note the name a group had, so that a rename can be mirrored."""
    if _mirroring() and instance.pk is not None:
        instance._kvs_old_name = (
            Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first()
        )


def _on_group_saved(sender, instance: Group, created: bool = False, **kwargs) -> None:
    if not _mirroring():
        return
    old = getattr(instance, "_kvs_old_name", None)
    if old is not None and old != instance.name:
        _group_in_records(old, instance.name)
        _publish(GROUPS, old, None)
    if created:
        _group_in_records(instance.name, None)  # a new group has no members yet, anywhere
    _publish(GROUPS, instance.name, {"name": instance.name})


def _on_group_deleted(sender, instance: Group, **kwargs) -> None:
    if _mirroring():
        _group_in_records(instance.name, None)
        _publish(GROUPS, instance.name, None)


def _on_token_saved(sender, instance: ApiToken, **kwargs) -> None:
    if _mirroring():
        _publish(TOKENS, instance.id, token_record(instance))


def _on_token_deleted(sender, instance: ApiToken, **kwargs) -> None:
    if _mirroring():
        _publish(TOKENS, instance.id, None)


def _on_rule_saved(sender, instance: AclRule, **kwargs) -> None:
    if _mirroring():
        record = {"prefix": instance.prefix, "owner": instance.owner}
        record.update(group=instance.group, mode=instance.mode)
        _publish(ACL, instance.prefix, record)


def _on_rule_deleted(sender, instance: AclRule, **kwargs) -> None:
    if _mirroring():
        _publish(ACL, instance.prefix, None)


def _on_schema_saved(sender, instance: PrefixSchema, **kwargs) -> None:
    if _mirroring():
        _publish(SCHEMAS, instance.prefix, {"prefix": instance.prefix, "schema": instance.schema})


def _on_schema_deleted(sender, instance: PrefixSchema, **kwargs) -> None:
    if _mirroring():
        _publish(SCHEMAS, instance.prefix, None)


def _on_index_saved(sender, instance: ValueIndex, created: bool = False, **kwargs) -> None:
    if _mirroring() and created:  # later saves only record the local build's progress
        record = {"name": instance.name, "prefix": instance.prefix, "path": instance.path}
        _publish(INDEXES, instance.name, record)


def _on_index_deleted(sender, instance: ValueIndex, **kwargs) -> None:
    if _mirroring():
        _publish(INDEXES, instance.name, None)


def connect_mirrors() -> None:
    """Mirror every change of a security record into its `_sys/` entry (called once at startup)."""
    for model, saved, deleted in (
        (User, _on_user_saved, _on_user_deleted),
        (Group, _on_group_saved, _on_group_deleted),
        (ApiToken, _on_token_saved, _on_token_deleted),
        (AclRule, _on_rule_saved, _on_rule_deleted),
        (PrefixSchema, _on_schema_saved, _on_schema_deleted),
        (ValueIndex, _on_index_saved, _on_index_deleted),
    ):
        post_save.connect(saved, sender=model, dispatch_uid=f"kvs-mirror-save-{model.__name__}")
        post_delete.connect(deleted, sender=model, dispatch_uid=f"kvs-mirror-del-{model.__name__}")
    pre_save.connect(_on_group_changing, sender=Group, dispatch_uid="kvs-mirror-group-rename")
    m2m_changed.connect(
        _on_membership_changed, sender=User.groups.through, dispatch_uid="kvs-mirror-groups"
    )
    entries_applied.connect(_on_entries_applied, dispatch_uid="kvs-materialize")


# --- Record → model ------------------------------------------------------------------------------


def _on_entries_applied(sender, changes: list[Change], **kwargs) -> None:
    from .node import local_node

    for change in changes:
        if change.key.startswith(SYSTEM_PREFIX) and change.origin != local_node().node_id:
            record_materialize(change.key)


def record_materialize(key: str) -> None:
    """Bring the table row of the system record `key` in line with its stored entry.

    The entry is read and its row written under the store lock, which entries_applied comes
    after: on SQLite a newer version of the record cannot be committed and materialized in
    between. (On PostgreSQL that lock is a no-op, as before: receivers run after the commit.)"""
    kind, name = _parse_key(key)
    with store_write_lock():
        entry = Entry.objects.filter(key=key).first()
        if entry is None:
            return
        record = None if entry.deleted or entry.value is None else orjson.loads(entry.value)
        with _materializing(), transaction.atomic():
            _MATERIALIZERS[kind](name, record)
        if kind in (USERS, GROUPS) and record is not None:
            _materialize_dependents(name)


def _materialize_dependents(name: str) -> None:
    """Records waiting for the user or group `name`: tokens of a user, users in a group."""
    needle = orjson.dumps(name).decode()
    for kind in (TOKENS, USERS):
        prefix = record_key(kind, "")
        waiting = Entry.objects.filter(
            key__gte=prefix, key__lt=prefix_successor(prefix), deleted=False, value__contains=needle
        ).values_list("key", flat=True)
        for key in waiting:
            kind_, record_name = _parse_key(key)
            record = orjson.loads(Entry.objects.get(key=key).value)
            with _materializing(), transaction.atomic():
                _MATERIALIZERS[kind_](record_name, record)


def _user_materialize(username: str, record: dict | None) -> None:
    if record is None:
        User.objects.filter(username=username).delete()
        return
    fields = {field: record[field] for field in _USER_FIELDS}
    fields["date_joined"] = parse_datetime(record["date_joined"])
    user, _ = User.objects.update_or_create(username=username, defaults=fields)
    user.groups.set(Group.objects.filter(name__in=record["groups"]))


def _group_materialize(name: str, record: dict | None) -> None:
    if record is None:
        Group.objects.filter(name=name).delete()
    else:
        Group.objects.get_or_create(name=name)


def _token_materialize(token_id: str, record: dict | None) -> None:
    if record is None:
        ApiToken.objects.filter(id=token_id).delete()
        return
    user = User.objects.filter(username=record["user"]).first()
    if user is None:
        return  # materialized again when the user's record arrives
    ApiToken.objects.update_or_create(
        id=token_id,
        defaults={
            "user": user,
            "name": record["name"],
            "secret_hash": record["secret_hash"],
            "scopes": record["scopes"],
            "prefix": record["prefix"],
            "created_at": parse_datetime(record["created_at"]),
            "expires_at": record["expires_at"] and parse_datetime(record["expires_at"]),
            "revoked_at": record["revoked_at"] and parse_datetime(record["revoked_at"]),
        },
    )


def _rule_materialize(prefix: str, record: dict | None) -> None:
    if record is None:
        AclRule.objects.filter(prefix=prefix).delete()
    else:
        fields = {"owner": record["owner"], "group": record["group"], "mode": record["mode"]}
        AclRule.objects.update_or_create(prefix=prefix, defaults=fields)


def _schema_materialize(prefix: str, record: dict | None) -> None:
    if record is None:
        PrefixSchema.objects.filter(prefix=prefix).delete()
    else:
        PrefixSchema.objects.update_or_create(prefix=prefix, defaults={"schema": record["schema"]})


def _index_materialize(name: str, record: dict | None) -> None:
    if record is None:
        for index in ValueIndex.objects.filter(name=name):
            index.delete()  # one by one: each drops its database index
    else:
        fields = {"prefix": record["prefix"], "path": record["path"]}
        ValueIndex.objects.get_or_create(name=name, defaults=fields)


_MATERIALIZERS = {
    USERS: _user_materialize,
    GROUPS: _group_materialize,
    TOKENS: _token_materialize,
    ACL: _rule_materialize,
    SCHEMAS: _schema_materialize,
    INDEXES: _index_materialize,
}


# --- Checking a record from a peer ---------------------------------------------------------------


def _fits(model, field: str, value: object, *, null: bool = False) -> bool:
    """Whether `value` can be stored in the text column `field` of `model`."""
    if value is None:
        return null
    limit = model._meta.get_field(field).max_length
    return isinstance(value, str) and (limit is None or len(value) <= limit)


def _moment(value: object, *, null: bool = False) -> bool:
    if value is None:
        return null
    try:
        return isinstance(value, str) and parse_datetime(value) is not None
    except ValueError:
        return False


def _user_problem(name: str, record: dict) -> str | None:
    if record["username"] != name:
        return "the username is not the record's name"
    for field in ("email", "password", "first_name", "last_name"):
        if not _fits(User, field, record[field]):
            return f"{field} is not text of the column's length"
    for field in ("is_superuser", "is_staff", "is_active"):
        if not isinstance(record[field], bool):
            return f"{field} is not true or false"
    if not _moment(record["date_joined"]):
        return "date_joined is not an ISO date-time"
    groups = record["groups"]
    if not isinstance(groups, list) or not all(_fits(Group, "name", g) for g in groups):
        return "groups is not a list of group names"
    return None


def _group_problem(name: str, record: dict) -> str | None:
    return None if record["name"] == name else "the name is not the record's name"


def _token_problem(name: str, record: dict) -> str | None:
    if record["id"] != name:
        return "the id is not the record's name"
    checks = [
        ("user", _fits(User, "username", record["user"])),
        ("name", _fits(ApiToken, "name", record["name"])),
        ("secret_hash", _fits(ApiToken, "secret_hash", record["secret_hash"])),
        ("prefix", _fits(ApiToken, "prefix", record["prefix"], null=True)),
    ]
    for field, ok in checks:
        if not ok:
            return f"{field} is not text of the column's length"
    scopes = record["scopes"]
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
        return "scopes is not a list of scope names"
    for field, null in (("created_at", False), ("expires_at", True), ("revoked_at", True)):
        if not _moment(record[field], null=null):
            return f"{field} is not an ISO date-time{' or null' if null else ''}"
    return None


def _rule_problem(name: str, record: dict) -> str | None:
    if record["prefix"] != name:
        return "the prefix is not the record's name"
    for field in ("owner", "group"):
        if not _fits(AclRule, field, record[field], null=True):
            return f"{field} is not null or a name of the column's length"
    mode = record["mode"]
    if type(mode) is not int or not 0 <= mode <= 0o7777:
        return "mode is not an integer from 0 to 4095"
    return None


def _schema_problem(name: str, record: dict) -> str | None:
    if record["prefix"] != name:
        return "the prefix is not the record's name"
    schema = record["schema"]
    if not isinstance(schema, dict | bool):
        return "schema is not a JSON Schema (an object, true or false)"
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as error:
        return f"schema is no valid JSON Schema at {error.json_path}"
    return None


def _index_problem(name: str, record: dict) -> str | None:
    from kvsite.exceptions import InvalidInput
    from query.language import path_format, path_parse

    prefix, path = record["prefix"], record["path"]
    if not _fits(ValueIndex, "prefix", prefix) or not _fits(ValueIndex, "path", path):
        return "prefix and path are not text of the column's length"
    try:
        if path_format(path_parse(path)) != path:
            return "the path is not in its normal form"
    except InvalidInput:
        return "the path is no dot path the query language accepts"
    if record["name"] != name or index_name(prefix, path) != name:
        return "the name is not the index name of its prefix and path"
    return None


_RECORD_FIELDS = {
    USERS: frozenset((*_USER_FIELDS, "username", "date_joined", "groups")),
    GROUPS: frozenset(("name",)),
    TOKENS: frozenset(
        ("id", "user", "name", "secret_hash", "scopes", "prefix")
        + ("created_at", "expires_at", "revoked_at")
    ),
    ACL: frozenset(("prefix", "owner", "group", "mode")),
    SCHEMAS: frozenset(("prefix", "schema")),
    INDEXES: frozenset(("name", "prefix", "path")),
}
_RECORD_PROBLEMS = {
    USERS: _user_problem,
    GROUPS: _group_problem,
    TOKENS: _token_problem,
    ACL: _rule_problem,
    SCHEMAS: _schema_problem,
    INDEXES: _index_problem,
}


def record_validate(kind: str, name: str, record: object) -> str | None:
    """Why the parsed value of the record `_sys/<kind>/<name>` could not be materialized (None:
    it can be): the fields its kind has, each of the type and length its table column takes."""
    expected = _RECORD_FIELDS[kind]
    if not isinstance(record, dict):
        return f"a {kind} record is a JSON object"
    if record.keys() != expected:
        odd = sorted((expected - record.keys()) or (record.keys() - expected))
        return f"a {kind} record has exactly the fields {sorted(expected)} (not so: {odd[0]})"
    return _RECORD_PROBLEMS[kind](name, record)
