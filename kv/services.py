"""Writes to the store. Every change, local or replicated, goes through `entry_apply`."""

import uuid
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from audit.services import events_record, write_event
from cluster.node import MODE_LEFT, MODE_READ_ONLY, MODE_SYNCING, local_node, node_mode
from kvsite.exceptions import Conflict, Forbidden, InvalidInput, NotFound, Unavailable

from . import rows
from .acl import SYSTEM, Caller, caller_may, caller_may_set_meta
from .hlc import hlc_from_ms, hlc_observe, hlc_tick, wall_ms
from .keys import key_validate, prefix_successor
from .locking import store_write_lock
from .merkle import ZERO, bucket_of, record_digest, xor_hex
from .models import Entry, EntryVersion, StoreState
from .policy import creation_policy, value_validate
from .signals import entry_applied
from .versions import Version, expiry_tombstone, version_newer

CAS_ABSENT = "0"
PERM_NAMES = {"c": "create", "d": "delete", "w": "write", "r": "read"}


def client_writes_check() -> None:
    """Raise unless this node accepts client writes now."""
    mode = node_mode()
    if mode == MODE_READ_ONLY:
        raise Forbidden("This node is read-only.", mode=mode)
    if mode == MODE_SYNCING:
        raise Unavailable("This node is syncing with the cluster; try again shortly.", mode=mode)
    if mode == MODE_LEFT:
        raise Unavailable(
            "This node has left the cluster (until it is restarted); write to another node.",
            mode=mode,
        )


def entry_apply(
    v: Version, *, state: StoreState | None = None, current: Entry | None = None
) -> Entry | None:
    """Store `v` if it is newer than the stored version of its key; return None when it is not.

    Replication calls this with a version alone; local writes pass the state row and current
    entry they already hold locked. Applying a version that is not newer changes nothing, so
    replicas may apply the same versions any number of times, in any order.
    """
    with store_write_lock(), transaction.atomic():
        if state is None:
            state = rows.state_lock()
            current = rows.entry_by_key(v.key)
            if v.hlc > state.hlc:
                state.hlc = hlc_observe(state.hlc, v.hlc)
                rows.state_save(state)
        if current is not None and not version_newer(v, Version.of(current)):
            return None
        return _store(v, state=state, current=current)


def _store(v: Version, *, state: StoreState, current: Entry | None) -> Entry:
    state.revision += 1
    digest = record_digest(key=v.key, version=str(v.version), hlc=v.hlc, deleted=v.deleted)
    old_digest = ZERO
    if current is None:
        entry = Entry(key=v.key, bucket=bucket_of(v.key))
    else:
        entry = current
        old_digest = current.digest
        if settings.KVS_HISTORY_DEPTH > 0:
            rows.history_push(current, depth=settings.KVS_HISTORY_DEPTH)
    for field in ("version", "hlc", "origin", "origin_joined_at", "deleted", "value"):
        setattr(entry, field, getattr(v, field))
    entry.expires_at, entry.owner, entry.group, entry.mode = v.expires_at, v.owner, v.group, v.mode
    entry.revision = state.revision
    entry.digest = digest
    rows.entry_save(entry)
    _leaf_xor(entry.bucket, old_digest, digest, count_delta=0 if current else 1)
    state.merkle_root = xor_hex(state.merkle_root, old_digest, digest)
    rows.state_save(state)
    transaction.on_commit(
        partial(
            entry_applied.send,
            sender=Entry,
            key=v.key,
            revision=state.revision,
            deleted=v.deleted,
            origin=v.origin,
        )
    )
    return entry


def _leaf_xor(bucket: int, old_digest: str, new_digest: str, *, count_delta: int) -> None:
    rows.leaf_save(bucket, xor_hex(rows.leaf_hash(bucket), old_digest, new_digest), count_delta)


def _cas_parse(cas: str) -> uuid.UUID:
    try:
        return uuid.UUID(cas)
    except ValueError:
        raise InvalidInput(f"Invalid cas {cas!r}: give a version id, or 0 for 'absent'.") from None


def _cas_check(cas: str | None, live: Entry | None) -> None:
    if cas is None:
        return
    if cas == CAS_ABSENT:
        if live is not None:
            raise Conflict(
                "The key exists (cas=0 asks for an absent key).", version=str(live.version)
            )
        return
    expected = _cas_parse(cas)
    if live is None:
        raise Conflict("The key does not exist, so it cannot have that version.", version=None)
    if live.version != expected:
        raise Conflict("The key's current version differs.", version=str(live.version))


def _local_version(key: str, hlc: int, **fields) -> Version:
    node = local_node()
    return Version(
        key=key,
        version=uuid.uuid4(),
        hlc=hlc,
        origin=node.node_id,
        origin_joined_at=node.joined_at,
        **fields,
    )


def entry_put(
    *,
    key: str,
    value: str,
    caller: Caller = SYSTEM,
    ttl: int | None = None,
    cas: str | None = None,
    now: int | None = None,
) -> tuple[Entry, bool]:
    """Store JSON text `value` as the newest version of `key`; return (entry, created).

    Replacing needs `w` on the live entry and keeps its owner, group and mode; creating needs the
    governing ACL rule's `c`, and the new key is owned by the caller with the rule's group and
    mode. Raise Conflict if `cas` does not match the live version (`"0"`: must be absent).
    """
    key_validate(key)
    client_writes_check()
    value_validate(key=key, value=value)
    now = wall_ms() if now is None else now
    with store_write_lock(), transaction.atomic():
        state = rows.state_lock()
        current = rows.entry_by_key(key)
        live = current if current is not None and current.is_live(now) else None
        if live is not None:
            _require(caller, "w", live)
            owner, group, mode = live.owner, live.group, live.mode
        else:
            allowed, group, mode = creation_policy(caller, key)
            if not allowed:
                raise Forbidden(f"The ACL rule for {key!r} does not let you create keys there.")
            owner = caller.username
        _cas_check(cas, live)
        state.hlc = hlc_tick(state.hlc, now)
        v = _local_version(
            key,
            state.hlc,
            value=value,
            expires_at=now + ttl * 1000 if ttl else None,
            owner=owner,
            group=group,
            mode=mode,
        )
        entry = entry_apply(v, state=state, current=current)
        audit_writes("kv.put", [entry], caller=caller, created=live is None, ttl=ttl)
    return entry, live is None


def audit_writes(action: str, entries: list[Entry], *, caller: Caller, **detail) -> None:
    """Record client writes of `entries` in the audit trail, inside the write's transaction
    (the remote address and credential come from the request being served)."""
    events_record([write_event(action, e, actor=caller.username, **detail) for e in entries])


def _require(caller: Caller, perm: str, entry: Entry) -> None:
    if not caller_may(caller, perm, owner=entry.owner, group=entry.group, mode=entry.mode):
        raise Forbidden(f"The mode of {entry.key!r} does not grant you {PERM_NAMES[perm]}.")


def entry_delete(
    *, key: str, caller: Caller = SYSTEM, cas: str | None = None, now: int | None = None
) -> Entry:
    """Replace the live version of `key` with a tombstone; raise NotFound if there is none."""
    key_validate(key)
    client_writes_check()
    if cas == CAS_ABSENT:
        raise InvalidInput("cas=0 (absent) makes no sense for a delete.")
    if cas is not None:
        _cas_parse(cas)  # a malformed cas is a 400 even when the key is absent
    now = wall_ms() if now is None else now
    with store_write_lock(), transaction.atomic():
        state = rows.state_lock()
        current = rows.entry_by_key(key)
        live = current if current is not None and current.is_live(now) else None
        if live is None:
            raise NotFound(f"No key {key!r}.")
        _require(caller, "d", live)
        _cas_check(cas, live)
        tombstone = _tombstone(live, state=state, now=now)
        audit_writes("kv.delete", [tombstone], caller=caller)
        return tombstone


def _tombstone(live: Entry, *, state: StoreState, now: int) -> Entry:
    state.hlc = hlc_tick(state.hlc, now)
    v = _local_version(
        live.key, state.hlc, deleted=True, owner=live.owner, group=live.group, mode=live.mode
    )
    return entry_apply(v, state=state, current=live)


def entry_delete_recurse(*, key: str, caller: Caller = SYSTEM, now: int | None = None) -> int:
    """Tombstone `key` and every live key under `key/`; return how many were deleted.

    All or nothing: if the caller may not delete one of them, nothing is deleted.
    """
    key_validate(key)
    client_writes_check()
    now = wall_ms() if now is None else now
    below = f"{key}/"
    upper = prefix_successor(below)
    with store_write_lock(), transaction.atomic():
        state = rows.state_lock()
        live = Entry.objects.filter(deleted=False).exclude(expires_at__lte=now).filter(
            key__gte=below, key__lt=upper
        ) | Entry.objects.filter(key=key, deleted=False).exclude(expires_at__lte=now)
        doomed = list(live.order_by("key"))
        for entry in doomed:
            _require(caller, "d", entry)
        tombstones = [_tombstone(entry, state=state, now=now) for entry in doomed]
        audit_writes("kv.delete", tombstones, caller=caller, recurse=key)
    return len(doomed)


def entry_meta_set(
    *,
    key: str,
    owner: str | None = None,
    group: str | None = None,
    mode: int | None = None,
    fields: set[str],
    caller: Caller = SYSTEM,
    now: int | None = None,
) -> Entry:
    """Write a new version of `key` with the same value and the given owner/group/mode.

    Only the key's owner, an ACL administrator or a superuser may.
    """
    key_validate(key)
    client_writes_check()
    now = wall_ms() if now is None else now
    with store_write_lock(), transaction.atomic():
        state = rows.state_lock()
        current = rows.entry_by_key(key)
        if current is None or not current.is_live(now):
            raise NotFound(f"No key {key!r}.")
        if not caller_may_set_meta(caller, owner=current.owner):
            raise Forbidden("Only the key's owner or an admin:acl credential may change its meta.")
        principals_check(owner=owner, group=group)
        state.hlc = hlc_tick(state.hlc, now)
        v = _local_version(
            key,
            state.hlc,
            value=current.value,
            expires_at=current.expires_at,
            owner=owner if "owner" in fields else current.owner,
            group=group if "group" in fields else current.group,
            mode=mode if "mode" in fields else current.mode,
        )
        entry = entry_apply(v, state=state, current=current)
        meta = {"owner": entry.owner, "group": entry.group, "mode": entry.mode}
        audit_writes("kv.meta", [entry], caller=caller, **meta)
        return entry


def entry_ttl_set(
    *, key: str, ttl: int | None, caller: Caller = SYSTEM, now: int | None = None
) -> Entry:
    """Write a new version of `key` with the same value and an expiry `ttl` seconds from now
    (None: no expiry). Needs `w` on the live key; raise NotFound if there is none."""
    key_validate(key)
    client_writes_check()
    now = wall_ms() if now is None else now
    with store_write_lock(), transaction.atomic():
        state = rows.state_lock()
        current = rows.entry_by_key(key)
        if current is None or not current.is_live(now):
            raise NotFound(f"No key {key!r}.")
        _require(caller, "w", current)
        state.hlc = hlc_tick(state.hlc, now)
        v = _local_version(
            key,
            state.hlc,
            value=current.value,
            expires_at=now + ttl * 1000 if ttl else None,
            owner=current.owner,
            group=current.group,
            mode=current.mode,
        )
        entry = entry_apply(v, state=state, current=current)
        audit_writes("kv.put", [entry], caller=caller, created=False, ttl=ttl, via="ttl")
        return entry


def principals_check(*, owner: str | None, group: str | None) -> None:
    """Raise InvalidInput unless `owner` names a user and `group` a group (None passes)."""
    if owner is not None and not get_user_model().objects.filter(username=owner).exists():
        raise InvalidInput(f"No user {owner!r}.")
    if group is not None and not Group.objects.filter(name=group).exists():
        raise InvalidInput(f"No group {group!r}.")


def entries_expire(*, now: int | None = None, batch: int = 500) -> int:
    """Turn keys whose TTL has passed into their deterministic expiry tombstones; return count."""
    now = wall_ms() if now is None else now
    due = list(
        Entry.objects.filter(deleted=False, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:batch]
    )
    expired = 0
    for pk in due:
        with store_write_lock(), transaction.atomic():
            state = rows.state_lock()
            entry = Entry.objects.filter(pk=pk, deleted=False, expires_at__lte=now).first()
            if entry is None:
                continue  # replaced or deleted meanwhile
            tombstone = expiry_tombstone(Version.of(entry))
            state.hlc = hlc_observe(state.hlc, tombstone.hlc)
            if entry_apply(tombstone, state=state, current=entry) is not None:
                expired += 1
    return expired


def tombstones_purge(*, now: int | None = None, batch: int = 1000) -> int:
    """Forget tombstones older than KVS_TOMBSTONE_TTL (and their history); return count."""
    now = wall_ms() if now is None else now
    cutoff = hlc_from_ms(now - settings.KVS_TOMBSTONE_TTL * 1000)
    old = list(
        Entry.objects.filter(deleted=True, hlc__lt=cutoff).values_list("pk", flat=True)[:batch]
    )
    purged = 0
    for pk in old:
        with store_write_lock(), transaction.atomic():
            state = rows.state_lock()
            entry = Entry.objects.filter(pk=pk, deleted=True, hlc__lt=cutoff).first()
            if entry is None:
                continue
            EntryVersion.objects.filter(key=entry.key).delete()
            entry.delete()
            _leaf_xor(entry.bucket, entry.digest, ZERO, count_delta=-1)
            state.merkle_root = xor_hex(state.merkle_root, entry.digest)
            rows.state_save(state)
            purged += 1
    return purged


__all__ = [
    "entry_apply",
    "entry_put",
    "entry_delete",
    "entry_delete_recurse",
    "entry_meta_set",
    "entry_ttl_set",
    "entries_expire",
    "tombstones_purge",
]


def versions_apply(versions: list[Version], *, now: int | None = None, chunk: int = 100) -> int:
    """Apply versions that came from another node; return how many were newer than ours.

    A tombstone older than KVS_TOMBSTONE_TTL for a key this node does not hold is dropped: this
    node has purged it (or never needed it), and storing it again would only make it linger.
    """
    now = wall_ms() if now is None else now
    cutoff = hlc_from_ms(now - settings.KVS_TOMBSTONE_TTL * 1000)
    applied = 0
    for start in range(0, len(versions), chunk):
        with store_write_lock(), transaction.atomic():
            for v in versions[start : start + chunk]:
                key_validate(v.key, allow_reserved=True, from_peer=True)
                if v.deleted and v.hlc < cutoff and rows.entry_by_key(v.key) is None:
                    continue
                if entry_apply(v) is not None:
                    applied += 1
    return applied


SYSTEM_PREFIX = "_sys/"


def system_record_put(*, key: str, value: str | None, now: int | None = None) -> Entry | None:
    """Write this node's copy of a cluster-wide system record under the reserved `_sys/` prefix
    (value None: a tombstone). No ACL or schema applies; it replicates like any entry."""
    if not key.startswith(SYSTEM_PREFIX):
        raise InvalidInput(f"System records live under {SYSTEM_PREFIX!r}.")
    key_validate(key, allow_reserved=True)
    now = wall_ms() if now is None else now
    with store_write_lock(), transaction.atomic():
        state = rows.state_lock()
        current = rows.entry_by_key(key)
        if value is None and (current is None or current.deleted):
            return None
        if current is not None and not current.deleted and current.value == value:
            return current  # unchanged: no new version
        state.hlc = hlc_tick(state.hlc, now)
        v = _local_version(key, state.hlc, value=value, deleted=value is None, mode=0)
        return entry_apply(v, state=state, current=current)


def entry_delete_many(*, keys: list[str], caller: Caller = SYSTEM, now: int | None = None) -> int:
    """Tombstone every live key of `keys`; return how many were deleted.

    All or nothing: if the caller may not delete one of them, nothing is deleted. Keys that are
    already absent, deleted or expired are skipped.
    """
    now = wall_ms() if now is None else now
    deleted = 0
    with transaction.atomic():
        for key in dict.fromkeys(keys):
            try:
                entry_delete(key=key, caller=caller, now=now)
            except NotFound:
                continue
            deleted += 1
    return deleted
