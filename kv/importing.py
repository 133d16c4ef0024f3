"""Importing entries in batches: each item is a write of the batch path (kv.batch) with the same
checks as a PUT (key, scope prefix, ACL, schema), a whole batch in one transaction; an item equal
to what is stored is skipped, so importing the same lines twice changes nothing the second time.
One refused item never fails the others: every check comes before the item's write. The checks
that need no stored entry (key, token prefix, schema) run before the store is locked, so other
writers wait only for the rest."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from functools import partial

import orjson

from cluster.node import local_node
from kvsite.exceptions import Forbidden, InvalidInput, KvsError

from .acl import SYSTEM, Caller, caller_may, caller_may_set_meta
from .batch import Batch, Outcome, entries_apply_batch
from .hlc import wall_ms
from .keys import key_validate
from .models import Entry
from .policy import creation_policy, value_validate
from .services import audit_writes, client_writes_check, principals_check
from .versions import Version

WRITTEN, SKIPPED, REFUSED = "written", "skipped", "refused"
META = ("owner", "group", "mode")


@dataclass(frozen=True)
class ImportItem:
    """One line of an import: a value (JSON text) and, if given, expiry and meta."""

    key: str
    value: str
    expires_at: int | None = None
    owner: str | None = None
    group: str | None = None
    mode: int | None = None
    given: frozenset[str] = field(default_factory=frozenset)  # which of META the line set


@dataclass(frozen=True)
class ImportOutcome:
    status: str
    code: str | None = None
    detail: str | None = None
    entry: Entry | None = None


def entries_import(
    items: list[ImportItem],
    *,
    caller: Caller = SYSTEM,
    prefix: str | None = None,
    now: int | None = None,
) -> list[ImportOutcome]:
    """Write each item that differs from the stored entry of its key; one outcome per item.

    `prefix`: the caller's token is confined to keys under it. The node must accept client
    writes (else the whole batch raises, as a PUT would)."""
    client_writes_check()
    now = wall_ms() if now is None else now
    writes = [
        partial(_import_one, item=item, checked=_precheck(item, prefix=prefix), caller=caller,
                now=now)
        for item in items
    ]  # fmt: skip
    # the stored entries of every key are read in one query for the batch
    results = entries_apply_batch(writes, keys=[item.key for item in items])
    return [_outcome(result) for result in results]


def _outcome(result: Outcome) -> ImportOutcome:
    if isinstance(result.error, KvsError):
        return ImportOutcome(REFUSED, code=result.error.code, detail=result.error.detail)
    return result.get()


@dataclass(frozen=True)
class _Checked:
    """The checks of an item that need no stored entry, made before the store is locked."""

    refused: KvsError | None = None  # its key or the token's prefix: refused before anything
    schema_error: KvsError | None = None  # its schemas: refused if it is to be written


def _precheck(item: ImportItem, *, prefix: str | None) -> _Checked:
    try:
        key_validate(item.key)
        if prefix and not item.key.startswith(prefix):
            raise Forbidden(f"This token is confined to keys under {prefix!r}.")
    except KvsError as error:
        return _Checked(refused=error)
    try:
        value_validate(key=item.key, value=item.value)
    except KvsError as error:
        return _Checked(schema_error=error)
    return _Checked()


def _import_one(
    batch: Batch, *, item: ImportItem, checked: _Checked, caller: Caller, now: int
) -> ImportOutcome:
    if checked.refused is not None:
        raise checked.refused
    if item.expires_at is not None and item.expires_at <= now:
        return ImportOutcome(SKIPPED, detail="already expired")
    current = batch.entry(item.key)
    live = current if current is not None and current.is_live(now) else None
    if live is not None and _equal(live, item):
        return ImportOutcome(SKIPPED, detail="already equal", entry=live)
    if checked.schema_error is not None:  # now that the item is to be written
        raise checked.schema_error
    if live is not None:
        if not caller_may(caller, "w", owner=live.owner, group=live.group, mode=live.mode):
            raise Forbidden(f"The mode of {item.key!r} does not grant you write.")
        owner, group, mode = live.owner, live.group, live.mode
    else:
        allowed, group, mode = creation_policy(caller, item.key)
        if not allowed:
            raise Forbidden(f"The ACL rule for {item.key!r} does not let you create keys there.")
        owner = caller.username
    meta = {"owner": owner, "group": group, "mode": mode}
    changed = {name for name in item.given if getattr(item, name) != meta[name]}
    if changed:
        if not caller_may_set_meta(caller, owner=owner):
            raise Forbidden("Only the key's owner or an admin:acl credential may change its meta.")
        principals_check(owner=item.owner if "owner" in changed else None,
                         group=item.group if "group" in changed else None)  # fmt: skip
        meta.update({name: getattr(item, name) for name in changed})
    node = local_node()
    version = Version(
        key=item.key, version=uuid.uuid4(), hlc=batch.tick(now), origin=node.node_id,
        origin_joined_at=node.joined_at, actor=caller.username, value=item.value,
        expires_at=item.expires_at, **meta,
    )  # fmt: skip
    entry = batch.store(version)
    audit_writes(batch, "kv.put", [entry], caller=caller, via="import")
    return ImportOutcome(WRITTEN, entry=entry)


def _equal(live: Entry, item: ImportItem) -> bool:
    """Whether writing `item` would store what `live` already holds (the meta the item gives)."""
    if live.expires_at != item.expires_at:
        return False
    if any(getattr(live, name) != getattr(item, name) for name in item.given):
        return False
    return live.value == item.value or _canonical(live.value) == _canonical(item.value)


def _canonical(text: str) -> str:
    """JSON text with sorted object keys (integers of any size kept exact)."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONDecodeError, TypeError):
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def item_parse(data: object, *, mode_parse, value_text) -> ImportItem:
    """An ImportItem from one decoded item of a request; raise InvalidInput naming the problem.
    (`mode_parse` and `value_text` turn a given mode and value into stored form.)"""
    if not isinstance(data, dict):
        raise InvalidInput("An item is an object with key and value.")
    unknown = sorted(set(data) - {"key", "value", "expires_at", *META})
    if unknown:
        raise InvalidInput(f"Unknown field {unknown[0]!r}.")
    key, expires_at = data.get("key"), data.get("expires_at")
    if not isinstance(key, str) or "value" not in data:
        raise InvalidInput("An item needs a key (a string) and a value.")
    if expires_at is not None and (type(expires_at) is not int or expires_at < 0):
        raise InvalidInput("expires_at is milliseconds since the epoch, or null.")
    for name in ("owner", "group"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise InvalidInput(f"{name} is a name, or null.")
    given = frozenset(name for name in META if name in data)
    mode = mode_parse(data["mode"]) if "mode" in data else None
    return ImportItem(
        key=key, value=value_text(data["value"]), expires_at=expires_at,
        owner=data.get("owner"), group=data.get("group"), mode=mode, given=given,
    )  # fmt: skip
