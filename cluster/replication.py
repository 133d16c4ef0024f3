"""Push replication: deliver this node's change feed to every alive peer from a per-peer cursor.

Every applied change gets a local revision. For each peer the node remembers the last revision
it delivered; a push sends the entries changed since then in revision order, in batches, and
advances the cursor after each batch the peer accepted. A peer that was down keeps its old
cursor and catches up when it is back. Versions the peer wrote itself are not sent back to it.
Pushes start shortly after each commit (a per-process debounce) and on a periodic sweep.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.db.models.functions import Greatest

from kv.hlc import hlc_ms, wall_ms
from kv.selectors import change_after, changes_since, store_state
from kv.signals import entries_applied
from kv.versions import Version
from kvsite.debounce import Debounce

from .antientropy import VERSIONS_PATH, versions_by_size, versions_sendable
from .membership import LEFT, MemberState
from .metrics import push_counted, push_failure_counted
from .models import PeerCursor
from .node import local_node
from .selectors import members_alive, members_list
from .transport import Transport, TransportError

_peer_locks: dict[str, threading.Lock] = {}
_again: set[str] = set()
_locks_guard = threading.Lock()


def cursor_get(node_id: str) -> int:
    return PeerCursor.objects.get_or_create(node_id=node_id)[0].revision


def cursor_advance(node_id: str, revision: int) -> None:
    """Move a peer's cursor forward (never back, whatever order pushes finish in)."""
    PeerCursor.objects.filter(node_id=node_id).update(revision=Greatest(F("revision"), revision))


def replicate_push(transport: Transport, peer: MemberState) -> int:
    """Send `peer` every change past its cursor; return how many versions were sent.

    One pusher per peer at a time in this process (pushes run in the node's one Celery worker);
    another caller returns 0. A second process pushing too would only resend versions, which the
    peer ignores, and cursors only move forward.
    """
    with _locks_guard:
        lock = _peer_locks.setdefault(peer.node_id, threading.Lock())
        if not lock.acquire(blocking=False):
            _again.add(peer.node_id)  # the running push goes round once more for our changes
            return 0
    sent = 0
    try:
        while True:
            sent += _push_from_cursor(transport, peer)
            with _locks_guard:
                if peer.node_id not in _again:
                    lock.release()
                    return sent
                _again.discard(peer.node_id)
    except BaseException:
        with _locks_guard:
            _again.discard(peer.node_id)
            lock.release()
        raise


def _push_from_cursor(transport: Transport, peer: MemberState) -> int:
    cursor, sent = cursor_get(peer.node_id), 0
    while True:
        changed, last = changes_since(revision=cursor, limit=settings.KVS_PUSH_BATCH)
        if not changed:
            return sent
        batch = versions_sendable([Version.of(e) for e in changed if e.origin != peer.node_id])
        for chunk in versions_by_size(batch, settings.KVS_PUSH_BATCH_BYTES):
            try:
                transport.send(peer.url, VERSIONS_PATH, {"versions": chunk}, to=peer.node_id)
            except TransportError:
                push_failure_counted(peer=peer.node_id)
                raise
            push_counted(peer=peer.node_id, versions=len(chunk))
            sent += len(chunk)
        cursor_advance(peer.node_id, last)
        cursor = last


@dataclass(frozen=True)
class ReplicationLag:
    """How far push replication to one peer trails this node's change feed."""

    revisions: int  # changes applied here that the peer's cursor has not passed
    seconds: float  # age of the oldest of them (0 when there is none)


def replication_lags(*, now: int | None = None) -> dict[str, ReplicationLag]:
    """The lag of every peer this node pushes to or will (members but itself and those that
    left), by node id, at `now` (ms)."""
    now = wall_ms() if now is None else now
    me = local_node().node_id
    revision = store_state().revision
    cursors = dict(PeerCursor.objects.values_list("node_id", "revision"))
    lags = {}
    for member in members_list():
        if member.node_id == me or member.status == LEFT:
            continue
        cursor = min(cursors.get(member.node_id, 0), revision)
        oldest = change_after(revision=cursor) if cursor < revision else None
        seconds = 0.0 if oldest is None else max(0, now - hlc_ms(oldest)) / 1000
        lags[member.node_id] = ReplicationLag(revisions=revision - cursor, seconds=seconds)
    return lags


# --- Starting pushes soon after commits ---------------------------------------------------------


PUSH_PENDING = "kvs:push:pending"
PUSH_PENDING_S = 5.0  # a queued push that has not started by then is dropped (with no sweep)


_peers_seen: tuple[float, bool] = (0.0, False)


def _peers_alive() -> bool:
    """Whether this node knows an alive peer (looked up at most once a second per process)."""
    global _peers_seen
    deadline, alive = _peers_seen
    now = time.monotonic()
    if now >= deadline:
        alive = bool(members_alive())
        _peers_seen = (now + 1.0, alive)
    return alive


def _enqueue_push() -> None:
    """Queue one push unless one is queued and not started yet: that one will read this commit.

    A node alone queues nothing (the periodic sweep still runs).
    """
    from .tasks import replicate_push_all

    if not _peers_alive():
        return
    pending_s = settings.KVS_PUSH_INTERVAL * 5 or PUSH_PENDING_S
    if cache.add(PUSH_PENDING, 1, timeout=pending_s):
        replicate_push_all.apply_async(expires=pending_s)


_push_soon = Debounce(_enqueue_push, delay_s=0.025)


def _on_entries_applied(sender, **kwargs) -> None:
    if settings.KVS_PUSH_ON_COMMIT:
        _push_soon.poke()  # once per committed batch


def connect_push() -> None:
    entries_applied.connect(_on_entries_applied, dispatch_uid="kvs-push-soon")
