"""Reads of the audit trail: pages of events, and verifying the chain."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from . import chain
from .models import GENESIS, AuditChain, AuditEvent

VERIFY_CHUNK = 2000
FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "target",
    "node",
    "remote",
    "credential",
    "detail",
    "hash",
)
StoredEvent = namedtuple("StoredEvent", FIELDS)  # rows as verify reads them (no model instances)


@dataclass(frozen=True)
class EventFilter:
    """What a page of events is limited to (None: anything)."""

    actor: str | None = None
    action: str | None = None
    prefix: str | None = None  # of the target (a key, a username, a prefix, a node id)
    since: datetime | None = None
    until: datetime | None = None


def events_filtered(queryset: QuerySet[AuditEvent], where: EventFilter) -> QuerySet[AuditEvent]:
    """`queryset` narrowed to the events `where` allows."""
    if where.actor is not None:
        queryset = queryset.filter(actor=where.actor)
    if where.action is not None:
        queryset = queryset.filter(action=where.action)
    if where.prefix:
        queryset = queryset.filter(target__startswith=where.prefix)
    if where.since is not None:
        queryset = queryset.filter(at__gte=where.since)
    if where.until is not None:
        queryset = queryset.filter(at__lt=where.until)
    return queryset


def events_page(
    *, after: int = 0, limit: int = 100, where: EventFilter | None = None
) -> tuple[list[AuditEvent], int | None]:
    """Up to `limit` events with seq > `after`, oldest first, and the `after` of the next page
    (None when this is the last)."""
    queryset = events_filtered(AuditEvent.objects.filter(seq__gt=after), where or EventFilter())
    rows = list(queryset.order_by("seq")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more else None)


@dataclass(frozen=True)
class Verdict:
    """What verifying found: `first_bad` is the seq of the first changed, missing or misplaced
    event (None when the whole chain holds)."""

    ok: bool
    checked: int
    first_bad: int | None
    head_seq: int
    head_hash: str
    anchor_seq: int
    reason: str = ""


def chain_verify() -> Verdict:
    """Check every stored event's keyed hash against the one before, from the anchor to the
    head: a changed, removed or reordered event (or a forged anchor) makes the chain fail at the
    first place it no longer holds."""
    head = AuditChain.objects.filter(pk=1).first() or AuditChain(pk=1)
    key = chain.audit_key()

    def verdict(checked: int, first_bad: int | None, reason: str = "") -> Verdict:
        return Verdict(
            ok=first_bad is None,
            checked=checked,
            first_bad=first_bad,
            head_seq=head.last_seq,
            head_hash=head.last_hash,
            anchor_seq=head.anchor_seq,
            reason=reason,
        )

    expected, previous = head.anchor_seq + 1, head.anchor_hash
    if head.anchor_seq or head.anchor_hash != GENESIS:
        mac = chain.anchor_mac(seq=head.anchor_seq, hash_=head.anchor_hash, key=key)
        if not chain.hashes_equal(mac, head.anchor_mac):
            return verdict(0, expected, "the anchor (where pruning stopped) is not genuine")
    checked = 0
    events = AuditEvent.objects.filter(seq__gte=min(expected, 1)).order_by("seq")
    for row in events.values_list(*FIELDS).iterator(chunk_size=VERIFY_CHUNK):
        event = StoredEvent(*row)
        if event.seq < expected:
            return verdict(checked, event.seq, "an event lies before the anchor")
        if event.seq != expected:
            return verdict(checked, expected, "an event is missing")
        if not chain.hashes_equal(chain.event_hash(event, previous=previous, key=key), event.hash):
            return verdict(checked, event.seq, "an event was changed or moved")
        checked += 1
        expected, previous = event.seq + 1, event.hash
    if expected - 1 > head.last_seq:
        return verdict(checked, head.last_seq + 1, "events lie beyond the chain's head")
    if expected - 1 < head.last_seq or not chain.hashes_equal(previous, head.last_hash):
        return verdict(checked, expected, "events are missing at the end")
    return verdict(checked, None)
