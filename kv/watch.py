"""Watch: tell websocket watchers about applied entries, in revision order, from a cursor.

Announcing: every process that applies entries (web workers for client writes and pushed
replication, Celery for expiry and anti-entropy) gathers the `entries_applied` signals (one per
committed batch) of a few milliseconds and sends one `kv.changed` message to the node's
CHANGES_GROUP: the highest revision and the keys that changed (no values: the message is small
and its sending cheap, so a batch pays only for a list extend). The batching thread is the
per-process debounce that push replication uses.

Following: each watch socket keeps a cursor. An announcement whose keys touch its prefix makes it
read the entries with cursor < revision <= announced revision under its prefix, in revision order,
and advance the cursor. Revisions are assigned and committed in order, so once revision r is
announced every revision below it is committed and one such read sees all of them: announcements
may arrive late or out of order and the socket still sees every change, once, in revision order.
A key changed twice between two reads is seen once, in its latest state.

Sharing: the sockets of one process read the feed through `RecentChanges`, a window of the
latest changes (of every key) that one read from the database extends for all of them; each
socket filters it by its prefix and the caller's permission. Only a socket whose cursor is older
than the window (a replay with `since`, a client that fell behind) reads the database itself.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading

import orjson
from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q

from cluster.node import local_node
from kvsite.debounce import Debounce
from kvsite.exceptions import InvalidInput
from kvsite.perloop import PerLoop
from kvsite.realtime import layer_send

from .acl import Caller
from .hlc import wall_ms
from .keys import prefix_successor, prefix_validate
from .models import Entry
from .selectors import RESERVED_AFTER, RESERVED_FIRST, entry_readable, store_state
from .signals import Change, entries_applied

log = logging.getLogger(__name__)

CHANGES_GROUP = "kv.changes"
MAX_ANNOUNCED_KEYS = 1000  # a larger batch is announced without its keys: everyone looks
READ_PAGE = 500

# --- Announcing (every process that applies entries) --------------------------------------------

_pending: list[tuple[str, int]] = []
_pending_lock = threading.Lock()


def changes_message(changes: list[tuple[str, int]]) -> dict:
    """The `kv.changed` group message for a batch of (key, revision)."""
    keys = sorted({key for key, _ in changes})
    return {
        "type": "kv.changed",
        "revision": max(revision for _, revision in changes),
        "keys": keys if len(keys) <= MAX_ANNOUNCED_KEYS else None,
    }


def changes_announce() -> None:
    """Send the changes gathered since the last call to the watchers of this node."""
    with _pending_lock:
        changes = _pending[:]
        _pending.clear()
    if not changes:
        return
    try:
        layer_send(CHANGES_GROUP, changes_message(changes))
    except Exception:  # Redis may be down: watchers catch up with the next announcement
        log.warning("could not announce %d changes to watchers", len(changes), exc_info=True)


_announce_soon = Debounce(changes_announce, delay_s=settings.KVS_WATCH_BATCH_DELAY)


def _on_entries_applied(sender, *, changes: list[Change], **kwargs) -> None:
    # the cluster's own records are never watched
    watched = [(c.key, c.revision) for c in changes if not c.key.startswith(RESERVED_FIRST)]
    if not watched:
        return
    with _pending_lock:
        _pending.extend(watched)
    _announce_soon.poke()


def connect_watch() -> None:
    """Announce every applied batch of this process to the node's watchers."""
    entries_applied.connect(_on_entries_applied, dispatch_uid="kvs-watch-announce")


# --- Following (each watch socket) ---------------------------------------------------------------


def watch_params(params: dict[str, str]) -> tuple[str, int | None]:
    """The prefix ('' watches everything) and `since` revision of a watch; raise InvalidInput."""
    prefix = prefix_validate(params.get("prefix", ""))
    since = params.get("since")
    if since is None or since == "":
        return prefix, None
    if not since.isdigit() or len(since) > 18:
        raise InvalidInput("since must be a revision: a non-negative integer.")
    return prefix, int(since)


def watch_touches(prefix: str, keys: list[str] | None) -> bool:
    """Whether an announcement with these keys (None: unknown) may concern `prefix`."""
    return keys is None or not prefix or any(key.startswith(prefix) for key in keys)


def watch_head() -> tuple[int, str]:
    """The node's latest committed revision, and the node's id: revisions are per node, so a
    `since` is only meaningful on the node that gave it."""
    return store_state().revision, local_node().node_id


def changes_under(*, prefix: str, after: int, upto: int, limit: int = READ_PAGE) -> list[Entry]:
    """Entries under `prefix` (tombstones too, reserved keys never) whose last change has a
    revision in (after, upto], in revision order, at most `limit`."""
    rows = Entry.objects.filter(revision__gt=after, revision__lte=upto).filter(
        Q(key__lt=RESERVED_FIRST) | Q(key__gte=RESERVED_AFTER)
    )
    if prefix:
        rows = rows.filter(key__gte=prefix)
        upper = prefix_successor(prefix)
        if upper is not None:
            rows = rows.filter(key__lt=upper)
    return list(rows.order_by("revision")[:limit])


def watch_frame(entry: Entry, *, now: int) -> str:
    """The event frame (JSON text) of an entry's current state: a put, or a delete (tombstone or
    expired). The stored value is spliced in without being parsed again."""
    live = entry.is_live(now)
    event = {
        "type": "put" if live else "delete",
        "key": entry.key,
        "value": orjson.Fragment(entry.value) if live else None,
        "version": str(entry.version),
        "timestamp": entry.timestamp,
        "hlc": entry.hlc,  # the version order's clock: a client moving between nodes compares it
        "revision": entry.revision,
    }
    return orjson.dumps(event).decode()


def watch_read(
    *, prefix: str, after: int, upto: int, caller: Caller, now: int | None = None
) -> tuple[list[str], int]:
    """The event frames `caller` may read among the next changes under `prefix` in
    (after, upto], and the cursor to continue from (`upto` once everything is read)."""
    entries = changes_under(prefix=prefix, after=after, upto=upto, limit=READ_PAGE)
    now = wall_ms() if now is None else now
    frames = [watch_frame(e, now=now) for e in entries if entry_readable(caller, e)]
    cursor = entries[-1].revision if len(entries) == READ_PAGE else upto
    return frames, cursor


# --- Sharing reads (the watch sockets of one process) ---------------------------------------------

WINDOW_ENTRIES = 2_000  # the window keeps at most this many changes...
WINDOW_BYTES = 8 * 1024 * 1024  # ...and at most this many bytes of values
# A window further than this many revisions behind what a socket asks for starts afresh there
# (the socket reads its prefix from the database itself) rather than reading every key's
# changes in between: nobody needed it meanwhile.
WINDOW_GAP = 5_000


class RecentChanges:
    """The latest changes of every key, read from the database once for all the watch sockets of
    one event loop, and the frames they make.

    The window holds every entry whose change had a revision in (start, end] when it was read,
    in revision order (a key changed again later appears again, further on). A socket that asks
    for (after, upto] with `after >= start` is served from it; a read that reaches past `end`
    extends it first, with one query whose answer every later socket shares.

    Read permission is decided as on the database: by the key's owner, group and mode as they
    stand now (the latest change of the key the window holds), for the caller as it stands now.
    """

    def __init__(self) -> None:
        self.start: int | None = None
        self.end: int | None = None
        self._revisions: list[int] = []
        self._entries: list[Entry] = []
        self._frames: list[str | None] = []  # None: the entry may expire, so decide when sent
        self._latest: dict[str, Entry] = {}  # each key's latest change in the window
        self._bytes = 0
        self._lock = asyncio.Lock()

    async def read(
        self, *, prefix: str, after: int, upto: int, caller: Caller
    ) -> tuple[list[str], int] | None:
        """Like `watch_read`, from the window: the frames and the cursor to continue from; None
        when `after` is older than the window (the socket reads the database itself)."""
        async with self._lock:
            if self.end is None or upto - self.end > WINDOW_GAP:
                self._restart(at=upto)
            if after < self.start:
                return None
            if upto > self.end:
                await self._extend(upto)
        cursor = min(upto, self.end)
        now = wall_ms()
        frames = []
        first = bisect.bisect_right(self._revisions, after)
        last = bisect.bisect_right(self._revisions, cursor)
        for index in range(first, last):
            entry = self._entries[index]
            if not entry.key.startswith(prefix) or not entry_readable(caller, entry):
                continue
            latest = self._latest[entry.key]
            if latest is not entry and not entry_readable(caller, latest):
                continue  # readable then, but its owner, group or mode changed since
            frame = self._frames[index]
            frames.append(frame if frame is not None else watch_frame(entry, now=now))
        return frames, cursor

    def _restart(self, *, at: int) -> None:
        self.start = self.end = at
        self._revisions, self._entries, self._frames, self._bytes = [], [], [], 0
        self._latest = {}

    async def _extend(self, upto: int) -> None:
        entries = await database_sync_to_async(changes_under)(
            prefix="", after=self.end, upto=upto, limit=READ_PAGE
        )
        now = wall_ms()
        for entry in entries:
            self._revisions.append(entry.revision)
            self._entries.append(entry)
            self._latest[entry.key] = entry
            self._frames.append(watch_frame(entry, now=now) if entry.expires_at is None else None)
            self._bytes += len(entry.value or "")
        self.end = entries[-1].revision if len(entries) == READ_PAGE else upto
        drop = 0
        while len(self._entries) - drop > WINDOW_ENTRIES or (
            self._bytes > WINDOW_BYTES and drop < len(self._entries) - 1
        ):
            dropped = self._entries[drop]
            self._bytes -= len(dropped.value or "")
            if self._latest.get(dropped.key) is dropped:
                del self._latest[dropped.key]
            drop += 1
        if drop:
            self.start = self._revisions[drop - 1]
            del self._revisions[:drop], self._entries[:drop], self._frames[:drop]


recent_changes = PerLoop(RecentChanges)  # the shared window of the running event loop
