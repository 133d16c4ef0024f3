"""Writes to the audit trail: recording events (in the caller's transaction), and pruning old
stretches while the chain still verifies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from cluster.node import local_node
from kv.locking import store_write_lock
from ops.events import audit_event_counted

from . import chain
from .context import Origin, current_origin
from .models import AuditChain, AuditEvent

UNSET = object()  # "take it from the request being served"


@dataclass(frozen=True)
class EventIn:
    """One event to record. Actor, credential and remote default to the current request's."""

    action: str
    target: str = ""
    detail: dict = field(default_factory=dict)
    actor: object = UNSET
    credential: object = UNSET
    remote: object = UNSET


def _now() -> datetime:
    return timezone.now()


def chain_lock() -> AuditChain:
    """The chain's head row, locked until the transaction ends (created on first use)."""
    head = AuditChain.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditChain.objects.get_or_create(pk=1)
        head = AuditChain.objects.select_for_update().get(pk=1)
    return head


def _pick(value: object, default, *, limit: int):
    """`value` (the origin's `default` when UNSET), cut to the column's length."""
    value = default if value is UNSET else value
    return value[:limit] if isinstance(value, str) else value


# Every write runs these three statements, so they skip the ORM's query building, which costs
# more than the statements themselves (bench/audit_bench.py).
_HEAD = f"SELECT last_seq, last_hash FROM {AuditChain._meta.db_table} WHERE id = 1"
_ADVANCE = f"UPDATE {AuditChain._meta.db_table} SET last_seq = %s, last_hash = %s WHERE id = 1"
_COLUMNS = ("seq", "at", "actor", "action", "target", "node", "remote", "credential", "detail",
            "hash")  # fmt: skip
_INSERT = f"INSERT INTO {AuditEvent._meta.db_table} ({', '.join(_COLUMNS)}) VALUES {{rows}}"
_ROW = f"({', '.join(['%s'] * len(_COLUMNS))})"
_ROWS_PER_INSERT = 500  # 5,000 parameters: within SQLite's and PostgreSQL's limits


def _head_locked() -> tuple[int, str]:
    """The last seq and hash of the chain, its row locked until the transaction ends."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(_HEAD + lock)
        row = cursor.fetchone()
    if row is None:
        head = chain_lock()
        return head.last_seq, head.last_hash
    return row[0], row[1]


def events_record(events: list[EventIn], *, now: datetime | None = None) -> list[AuditEvent]:
    """Append `events` to the chain, in order, inside the caller's transaction (one is opened
    if there is none): they are kept exactly when the change they record is. No savepoint of
    their own: if recording fails, the caller's whole transaction is rolled back."""
    if not events:
        return []
    origin: Origin = current_origin()
    at = chain.moment_of(chain.ms_of(now or _now()))  # whole milliseconds, as hashed
    node = local_node().node_id
    key = chain.audit_key()
    at_field, detail_field = AuditEvent._meta.get_field("at"), AuditEvent._meta.get_field("detail")
    db = connections[DEFAULT_DB_ALIAS]
    with store_write_lock(), transaction.atomic(savepoint=False):
        seq, previous = _head_locked()
        rows, params = [], []
        at_db = at_field.get_db_prep_save(at, db)
        for event in events:
            seq += 1
            # positional, in the order of _COLUMNS (what Model.__init__ reads fastest)
            row = AuditEvent(
                seq,
                at,
                _pick(event.actor, origin.actor, limit=150),
                event.action[:64],
                (event.target or "")[:1024],  # e.g. a login's username, any length
                node,
                _pick(event.remote, origin.remote, limit=64),
                _pick(event.credential, origin.credential, limit=64),
                chain.detail_normal(event.detail),
                "",
            )
            row.hash = previous = chain.event_hash(row, previous=previous, key=key)
            rows.append(row)
            params.append(
                [row.seq, at_db, row.actor, row.action, row.target, node, row.remote,
                 row.credential, detail_field.get_db_prep_save(row.detail, db), row.hash]
            )  # fmt: skip
        with connection.cursor() as cursor:
            for start in range(0, len(params), _ROWS_PER_INSERT):
                part = params[start : start + _ROWS_PER_INSERT]
                sql = _INSERT.format(rows=", ".join([_ROW] * len(part)))
                cursor.execute(sql, [value for row in part for value in row])
            cursor.execute(_ADVANCE, [seq, previous])
        transaction.on_commit(partial(_counted, [row.action for row in rows]))
    return rows


def event_record(
    action: str, *, target: str = "", detail: dict | None = None, **origin
) -> AuditEvent:
    """Append one event (see `events_record`)."""
    return events_record([EventIn(action=action, target=target, detail=detail or {}, **origin)])[0]


def _counted(actions: list[str]) -> None:
    for action in actions:
        audit_event_counted(action=action)


def write_event(action: str, entry, *, actor: str | None, **detail) -> EventIn:
    """The event of a client write of `entry` (a key's new version or tombstone)."""
    detail = {"version": str(entry.version), "revision": entry.revision, **detail}
    return EventIn(action=action, target=entry.key, detail=detail, actor=actor or UNSET)


def events_prune(*, now: datetime | None = None) -> int:
    """Delete the events older than KVS_AUDIT_RETENTION_DAYS (0: keep all); return how many.

    Only a whole stretch from the oldest event on is removed, and the last removed event's seq
    and hash become the anchor the chain is verified from (with a keyed MAC of its own)."""
    days = settings.KVS_AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or _now()) - timedelta(days=days)
    with store_write_lock(), transaction.atomic():
        head = chain_lock()
        last = (
            AuditEvent.objects.filter(seq__gt=head.anchor_seq, at__lt=cutoff)
            .order_by("-seq")
            .values_list("seq", "hash")
            .first()
        )
        if last is None:
            return 0
        seq, hash_ = last
        pruned, _ = AuditEvent.objects.filter(seq__lte=seq).delete()
        head.anchor_seq, head.anchor_hash = seq, hash_
        head.anchor_mac = chain.anchor_mac(seq=seq, hash_=hash_)
        head.save(update_fields=["anchor_seq", "anchor_hash", "anchor_mac"])
    return pruned
