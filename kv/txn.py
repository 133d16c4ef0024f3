"""Transactions: compare, then apply one branch of puts, deletes and gets, as one write of the batch
path (kv.batch) — so in one database transaction, with consecutive revisions, announced to
watchers and pushed to peers as one batch, or not at all.

ACL is checked for every op of both branches against the keys as they stand before anything is
applied; a refusal applies nothing and names the key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

from django.conf import settings

from kvsite.exceptions import Forbidden, InvalidInput

from .acl import SYSTEM, Caller, caller_may
from .batch import Batch
from .groupcommit import write_submit
from .hlc import wall_ms
from .importing import _canonical
from .keys import key_validate, ttl_parse
from .models import Entry
from .policy import creation_policy, value_validate
from .services import _local_version, _require, audit_writes, client_writes_check

PUT, DELETE, GET = "put", "delete", "get"


@dataclass(frozen=True)
class Compare:
    """One compare: `version` (the live version is it), `absent` (no live version) or `value`
    (the live value equals this JSON text)."""

    key: str
    version: str | None = None
    absent: bool = False
    value: str | None = None


@dataclass(frozen=True)
class Op:
    op: str
    key: str
    value: str | None = None  # JSON text, for a put
    ttl: int | None = None


@dataclass(frozen=True)
class OpResult:
    op: Op
    entry: Entry | None  # the put's or delete's new version, a get's live entry, or None
    created: bool = False


def txn_ops_check(compare: list[Compare], success: list[Op], failure: list[Op]) -> None:
    """Raise InvalidInput for too many ops, a bad key or a value its prefix's schema refuses."""
    total = len(compare) + len(success) + len(failure)
    if total > settings.KVS_TXN_MAX_OPS:
        raise InvalidInput(
            f"A transaction holds at most {settings.KVS_TXN_MAX_OPS} compares and ops; "
            f"this one has {total}."
        )
    for item in [*compare, *success, *failure]:
        key_validate(item.key)
    for op in [*success, *failure]:
        if op.op == PUT:
            value_validate(key=op.key, value=op.value)


def txn_apply(
    *,
    compare: list[Compare],
    success: list[Op],
    failure: list[Op],
    caller: Caller = SYSTEM,
    now: int | None = None,
) -> tuple[bool, list[OpResult]]:
    """Check the compares and apply `success` if they all hold, else `failure`; return which
    branch ran and one result per op of it."""
    txn_ops_check(compare, success, failure)
    client_writes_check()
    now = wall_ms() if now is None else now
    keys = tuple(item.key for item in [*compare, *success, *failure])
    write = partial(
        _txn_write, compare=compare, success=success, failure=failure, caller=caller, now=now
    )
    return write_submit(write, keys=keys)


def _live(batch: Batch, key: str, now: int) -> Entry | None:
    current = batch.entry(key)
    return current if current is not None and current.is_live(now) else None


def _allowed(batch: Batch, op: Op, caller: Caller, now: int) -> None:
    live = _live(batch, op.key, now)
    if op.op == GET:
        if live is not None:
            _require(caller, "r", live)
    elif op.op == DELETE:
        if live is not None:
            _require(caller, "d", live)
    elif live is not None:
        _require(caller, "w", live)
    elif not creation_policy(caller, op.key)[0]:
        raise Forbidden(f"The ACL rule for {op.key!r} does not let you create keys there.")


def _holds(batch: Batch, c: Compare, caller: Caller, now: int) -> bool:
    live = _live(batch, c.key, now)
    if live is not None and not caller_may(
        caller, "r", owner=live.owner, group=live.group, mode=live.mode
    ):
        raise Forbidden(f"The mode of {c.key!r} does not grant you read.")
    if c.absent:
        return live is None
    if live is None:
        return False
    if c.version is not None:
        return str(live.version) == c.version
    return live.value == c.value or _canonical(live.value) == _canonical(c.value)


def _txn_write(
    batch: Batch,
    *,
    compare: list[Compare],
    success: list[Op],
    failure: list[Op],
    caller: Caller,
    now: int,
) -> tuple[bool, list[OpResult]]:
    for op in [*success, *failure]:
        _allowed(batch, op, caller, now)
    succeeded = all(_holds(batch, c, caller, now) for c in compare)
    results = []
    for op in success if succeeded else failure:
        live = _live(batch, op.key, now)
        if op.op == GET:
            results.append(OpResult(op, live))
        elif op.op == DELETE:
            if live is None:
                results.append(OpResult(op, None))
                continue
            v = _local_version(
                op.key, batch.tick(now), deleted=True, owner=live.owner, group=live.group,
                mode=live.mode,
            )  # fmt: skip
            entry = batch.store(v)
            audit_writes(batch, "kv.delete", [entry], caller=caller, via="txn")
            results.append(OpResult(op, entry))
        else:
            if live is not None:
                owner, group, mode = live.owner, live.group, live.mode
            else:
                _allowed_, group, mode = creation_policy(caller, op.key)
                owner = caller.username
            v = _local_version(
                op.key, batch.tick(now), value=op.value, owner=owner, group=group, mode=mode,
                expires_at=now + op.ttl * 1000 if op.ttl else None,
            )  # fmt: skip
            entry = batch.store(v)
            audit_writes(
                batch, "kv.put", [entry], caller=caller, created=live is None, ttl=op.ttl,
                via="txn",
            )  # fmt: skip
            results.append(OpResult(op, entry, created=live is None))
    return succeeded, results


def op_parse(data: object, *, value_text) -> Op:
    """An Op from one decoded op of a request; raise InvalidInput naming the problem."""
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise InvalidInput("An op is an object with op and key.")
    kind = data.get("op")
    allowed = {PUT: {"op", "key", "value", "ttl"}, DELETE: {"op", "key"}, GET: {"op", "key"}}
    if kind not in allowed:
        raise InvalidInput(f"Unknown op {kind!r}: put, delete or get.")
    unknown = sorted(set(data) - allowed[kind])
    if unknown:
        raise InvalidInput(f"Unknown field {unknown[0]!r} in a {kind} op.")
    if kind != PUT:
        return Op(kind, data["key"])
    if "value" not in data:
        raise InvalidInput("A put op needs a value.")
    ttl = data.get("ttl")
    if ttl is not None:
        if not isinstance(ttl, str | int) or isinstance(ttl, bool):
            raise InvalidInput("ttl is seconds, or a number with s, m, h or d.")
        ttl = ttl_parse(str(ttl))
    return Op(PUT, data["key"], value=value_text(data["value"]), ttl=ttl)


def compare_parse(data: object, *, value_text) -> Compare:
    """A Compare from one decoded compare of a request; raise InvalidInput naming the problem."""
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise InvalidInput("A compare is an object with a key.")
    kinds = [name for name in ("version", "absent", "value") if name in data]
    unknown = sorted(set(data) - {"key", "version", "absent", "value"})
    if unknown or len(kinds) != 1:
        raise InvalidInput("A compare has a key and one of version, absent or value.")
    if "version" in data:
        try:
            version = str(uuid.UUID(data["version"]))
        except (TypeError, ValueError, AttributeError):
            raise InvalidInput("A compare's version is a version id.") from None
        return Compare(data["key"], version=version)
    if "absent" in data:
        if data["absent"] is not True:
            raise InvalidInput("A compare's absent is true.")
        return Compare(data["key"], absent=True)
    return Compare(data["key"], value=value_text(data["value"]))
