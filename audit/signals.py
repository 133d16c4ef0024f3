"""Changes of security records as audit events: users, group membership, groups, API tokens,
ACL rules, schemas and value indexes, made on this node (from the API, the admin or a command).
Each event is written by a model signal, inside the transaction of the change; records that
arrive from a peer (materialized by cluster.records) are not this node's actions and are not
recorded."""

from __future__ import annotations

import hashlib

import orjson
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save

from accounts.models import ApiToken, User
from cluster.records import record_change_local
from kv.acl import mode_format
from kv.models import AclRule, PrefixSchema
from query.models import ValueIndex

from .services import event_record

BOOKKEEPING = frozenset({"last_login"})  # a login writes it; the login is its own event


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _user_saved(sender, instance: User, created: bool, update_fields=None, **kwargs) -> None:
    if not record_change_local():
        return
    if created:
        flags = {"superuser": instance.is_superuser, "staff": instance.is_staff}
        event_record("user.create", target=instance.username, detail=flags)
        return
    fields = sorted(update_fields) if update_fields else None
    if fields is not None and set(fields) <= BOOKKEEPING:
        return
    detail = {
        "superuser": instance.is_superuser,
        "staff": instance.is_staff,
        "active": instance.is_active,
    }
    if fields is not None:
        detail["fields"] = fields
    event_record("user.update", target=instance.username, detail=detail)


def _user_deleted(sender, instance: User, **kwargs) -> None:
    if record_change_local():
        event_record("user.delete", target=instance.username)


def _membership_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if not record_change_local() or action not in ("post_add", "post_remove", "post_clear"):
        return
    op = action.removeprefix("post_")
    if reverse:  # group.user_set: the group's members changed
        names = sorted(User.objects.filter(pk__in=pk_set or ()).values_list("username", flat=True))
        detail = {"op": op} if op == "clear" else {"op": op, "users": names}
        event_record("group.members", target=instance.name, detail=detail)
    else:  # user.groups: the user's groups changed
        names = sorted(Group.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True))
        detail = {"op": op} if op == "clear" else {"op": op, "groups": names}
        event_record("user.groups", target=instance.username, detail=detail)


def _group_saved(sender, instance: Group, created: bool, **kwargs) -> None:
    if record_change_local():
        event_record("group.create" if created else "group.update", target=instance.name)


def _group_deleted(sender, instance: Group, **kwargs) -> None:
    if record_change_local():
        event_record("group.delete", target=instance.name)


def _token_saved(sender, instance: ApiToken, created: bool, update_fields=None, **kwargs) -> None:
    if not record_change_local():
        return
    detail = {"user": instance.user.username, "name": instance.name}
    if created:
        detail.update(
            scopes=list(instance.scopes),
            prefix=instance.prefix,
            expires_at=_iso(instance.expires_at),
        )
        action = "token.create"
    elif instance.revoked_at is not None and (not update_fields or "revoked_at" in update_fields):
        action = "token.revoke"
    else:
        action = "token.update"
    event_record(action, target=instance.id, detail=detail)


def _token_deleted(sender, instance: ApiToken, **kwargs) -> None:
    if record_change_local():
        event_record("token.delete", target=instance.id)


def _rule_saved(sender, instance: AclRule, **kwargs) -> None:
    if record_change_local():
        detail = {"owner": instance.owner, "group": instance.group, "mode": instance.mode,
                  "mode_string": mode_format(instance.mode)}  # fmt: skip
        event_record("acl.put", target=instance.prefix, detail=detail)


def _rule_deleted(sender, instance: AclRule, **kwargs) -> None:
    if record_change_local():
        event_record("acl.delete", target=instance.prefix)


def _schema_saved(sender, instance: PrefixSchema, **kwargs) -> None:
    if record_change_local():
        body = orjson.dumps(instance.schema, option=orjson.OPT_SORT_KEYS)
        detail = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
        event_record("schema.put", target=instance.prefix, detail=detail)


def _schema_deleted(sender, instance: PrefixSchema, **kwargs) -> None:
    if record_change_local():
        event_record("schema.delete", target=instance.prefix)


def _index_saved(sender, instance: ValueIndex, created: bool = False, **kwargs) -> None:
    if record_change_local() and created:  # later saves only record the local build's progress
        detail = {"name": instance.name, "path": instance.path}
        event_record("index.create", target=instance.prefix, detail=detail)


def _index_deleted(sender, instance: ValueIndex, **kwargs) -> None:
    if record_change_local():
        detail = {"name": instance.name, "path": instance.path}
        event_record("index.delete", target=instance.prefix, detail=detail)


def connect_audit() -> None:
    """Record every local change of a security record (called once at startup)."""
    for model, saved, deleted in (
        (User, _user_saved, _user_deleted),
        (Group, _group_saved, _group_deleted),
        (ApiToken, _token_saved, _token_deleted),
        (AclRule, _rule_saved, _rule_deleted),
        (PrefixSchema, _schema_saved, _schema_deleted),
        (ValueIndex, _index_saved, _index_deleted),
    ):
        post_save.connect(saved, sender=model, dispatch_uid=f"kvs-audit-save-{model.__name__}")
        post_delete.connect(deleted, sender=model, dispatch_uid=f"kvs-audit-del-{model.__name__}")
    m2m_changed.connect(
        _membership_changed, sender=User.groups.through, dispatch_uid="kvs-audit-groups"
    )
