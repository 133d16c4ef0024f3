"""The batch write path: many writes in one transaction, with consecutive revisions.

A write is a callable that receives the open `Batch`, reads the stored entries it needs from it,
decides (ACL, cas, schema…) and stores versions; it returns its own result or raises its own
error. `entries_apply_batch` runs a list of writes in order in one transaction under the store
write lock: a write that raises changes nothing (its staged versions are dropped) and never fails
the others. Versions are staged in memory and flushed with a few statements for the whole batch
(one upsert of the entries, one insert of the history versions and one trim, one read and one
update of the touched Merkle leaves, one update of the state row, one insert of the audit events
of the client writes), and one `entries_applied` signal is sent after commit for the whole batch.

Client writes reach it through `kv.groupcommit`, which gathers the writes that arrive together in
a process into one batch; imports, replication and expiry call it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction

from . import rows
from .hlc import hlc_observe, hlc_tick
from .locking import store_write_lock
from .merkle import ZERO, bucket_of, record_digest, xor_hex
from .models import Entry, StoreState
from .signals import Change, entries_applied
from .versions import Version, version_newer

Write = Callable[["Batch"], Any]


@dataclass
class Outcome:
    """What one write of a batch gave: its result, or the exception it raised."""

    result: Any = None
    error: BaseException | None = None

    def get(self) -> Any:
        """The result; raise the write's error instead if it failed."""
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class _Stored:
    entry: Entry
    replaced: Entry | None  # the entry it replaced (None: a new key)


_ENTRY_NAMES = [field.attname for field in Entry._meta.concrete_fields]


def _entry(**values) -> Entry:
    """An unsaved Entry of every column's value (given by name, passed by position: the form
    Model.__init__ reads fastest)."""
    return Entry(*[values.pop(name) for name in _ENTRY_NAMES], **values)


class Batch:
    """The writes of one transaction: the state row, the stored entries of the keys the writes
    touch (as the writes before have left them), and the versions staged for the flush."""

    def __init__(self, state: StoreState) -> None:
        self.state = state
        self._entries: dict[str, Entry | None] = {}
        self._history_count: dict[str, int] = {}
        self._stored: list[_Stored] = []
        self._flushed = 0  # how many of _stored are written to the database
        self._undo: list[tuple[str, Entry | None]] = []  # (key, its entry before the store)
        self._audit: list = []  # audit.services.EventIn of the client writes, in order

    # --- what writes call ------------------------------------------------------------------------

    def prefetch(self, keys: Iterable[str]) -> None:
        """Read the stored entries of `keys` that the batch does not hold yet, in one query."""
        missing = [key for key in dict.fromkeys(keys) if key not in self._entries]
        if not missing:
            return
        found = rows.entries_by_keys(missing)
        for key in missing:
            entry, count = found.get(key, (None, 0))
            self._entries[key] = entry
            self._history_count[key] = count

    def entry(self, key: str) -> Entry | None:
        """The stored entry of `key` (live, expired or tombstone) as of this point of the batch."""
        if key not in self._entries:
            self.prefetch([key])
        return self._entries[key]

    def tick(self, now: int) -> int:
        """The hlc of a local write at wall-clock `now` (ms)."""
        self.state.hlc = hlc_tick(self.state.hlc, now)
        return self.state.hlc

    def observe(self, hlc: int) -> None:
        """Merge a remote hlc into the node's clock."""
        self.state.hlc = hlc_observe(self.state.hlc, hlc)

    def store(self, v: Version) -> Entry | None:
        """Stage `v` as the newest version of its key with the next revision, if it is newer than
        the stored one; return the new entry, or None (nothing changes) when it is not."""
        current = self.entry(v.key)
        if current is not None and not version_newer(v, Version.of(current)):
            return None
        self.state.revision += 1
        entry = _entry(
            id=current.pk if current is not None else None,
            key=v.key,
            value=v.value,
            version=v.version,
            hlc=v.hlc,
            origin=v.origin,
            actor=v.actor,
            origin_joined_at=v.origin_joined_at,
            deleted=v.deleted,
            expires_at=v.expires_at,
            owner=v.owner,
            group=v.group,
            mode=v.mode,
            revision=self.state.revision,
            digest=record_digest(key=v.key, version=str(v.version), hlc=v.hlc, deleted=v.deleted),
            bucket=bucket_of(v.key) if current is None else current.bucket,
        )
        self._undo.append((v.key, current))
        self._entries[v.key] = entry
        self._stored.append(_Stored(entry, current))
        return entry

    def audit(self, events: list) -> None:
        """Record audit events (`audit.services.EventIn`, origin filled in) with the batch: one
        insert for the whole batch, in its transaction."""
        self._audit.extend(events)

    def sync(self) -> None:
        """Write what is staged to the database now, for a write that queries the entry table
        itself (call it before staging anything)."""
        self._flush()

    # --- what entries_apply_batch calls ----------------------------------------------------------

    def _run(self, write: Write) -> Outcome:
        mark = (len(self._stored), len(self._undo), len(self._audit), self.state.revision)
        try:
            return Outcome(result=write(self))
        except Exception as error:  # the write's own error; it stages nothing
            stored, undo, audit, revision = mark  # (the clock keeps what it ticked: never back)
            assert stored >= self._flushed, "a write that syncs must do so before it stores"
            del self._stored[stored:]
            for key, entry in reversed(self._undo[undo:]):
                self._entries[key] = entry
            del self._undo[undo:]
            del self._audit[audit:]
            self.state.revision = revision
            return Outcome(error=error)

    def _flush(self) -> list[_Stored]:
        staged = self._stored[self._flushed :]
        self._flushed = len(self._stored)
        if not staged:
            return staged
        latest = {item.entry.key: item.entry for item in staged}  # a key's last version wins
        stored: dict[str, Entry | None] = {}  # each key's row as the database holds it now
        for item in staged:
            stored.setdefault(item.entry.key, item.replaced)
        expiry_changed = any(
            row is not None and (row.deleted, row.expires_at) != (new.deleted, new.expires_at)
            for row, new in ((stored[key], entry) for key, entry in latest.items())
        )
        self._history(staged)  # before the upsert replaces the rows it copies
        ids = rows.entries_upsert(list(latest.values()), expiry_changed=expiry_changed)
        for item in staged:
            item.entry.pk = ids[item.entry.key]
            item.entry._state.adding = False
        self._merkle(staged)
        return staged

    def _history(self, staged: list[_Stored]) -> None:
        depth = settings.KVS_HISTORY_DEPTH
        if depth <= 0:
            return
        previous = [item.replaced for item in staged if item.replaced is not None]
        # a key's first replaced version is the row the database holds: it copies it; the
        # versions a batch stores and replaces again are inserted from here
        held, between, seen = [], [], set()
        for item in staged:
            key = item.entry.key
            if item.replaced is not None:
                (between if key in seen else held).append(item.replaced)
            seen.add(key)
        rows.history_copy([entry.key for entry in held])
        rows.history_insert(between)
        over = []
        for entry in previous:
            count = self._history_count.get(entry.key, 0) + 1
            self._history_count[entry.key] = count
            if count == depth + 1:
                over.append(entry.key)
        rows.history_trim(over, depth=depth)
        for key in over:
            self._history_count[key] = depth

    def _merkle(self, staged: list[_Stored]) -> None:
        deltas: dict[int, tuple[int, int]] = {}
        for item in staged:
            old = item.replaced.digest if item.replaced is not None else ZERO
            xor, count = deltas.get(item.entry.bucket, (0, 0))
            xor ^= int(old, 16) ^ int(item.entry.digest, 16)
            deltas[item.entry.bucket] = (xor, count + (item.replaced is None))
        hashes = rows.leaves_hash(sorted(deltas))
        changes, root = [], self.state.merkle_root
        for bucket, (xor, count) in sorted(deltas.items()):
            delta = f"{xor:032x}"
            changes.append((bucket, xor_hex(hashes[bucket], delta), count))
            root = xor_hex(root, delta)
        rows.leaves_save(changes)
        self.state.merkle_root = root


def entries_apply_batch(writes: Sequence[Write], *, keys: Iterable[str] = ()) -> list[Outcome]:
    """Run `writes` in order in one transaction; return each one's outcome, in order.

    `keys`: the keys the writes will read, fetched in one query up front. Revisions are
    consecutive in the order the versions were stored. Watchers and push replication hear of the
    whole batch once, after commit. A database error fails the whole batch (it raises).
    """
    return entries_apply_taken(lambda: (writes, keys))


def entries_apply_taken(take: Callable[[], tuple[Sequence[Write], Iterable[str]]]) -> list[Outcome]:
    """`entries_apply_batch` of the writes and keys that `take()` gives once the store is locked
    (the state row too: on PostgreSQL that is the lock), so that a group commit gathers the
    writes that arrive while it waits.

    The `entries_applied` signal of a batch committed here is sent once the store lock is
    released (its receivers only queue work for other threads), so that the next writer of the
    node does not wait for it; inside an outer transaction it is sent when that one commits."""
    outermost = not transaction.get_connection().in_atomic_block
    with store_write_lock(), transaction.atomic():
        batch = Batch(rows.state_lock())
        writes, keys = take()
        batch.prefetch(keys)
        outcomes = [batch._run(write) for write in writes]
        batch._flush()
        rows.state_save(batch.state)
        if batch._audit:
            from audit.services import events_record

            events_record(batch._audit)
        changes = [
            Change(s.entry.key, s.entry.revision, s.entry.deleted, s.entry.origin)
            for s in batch._stored
        ]
        if changes and not outermost:
            transaction.on_commit(partial(entries_applied.send, sender=Entry, changes=changes))
    if changes and outermost:  # committed (an error above would have raised)
        entries_applied.send(sender=Entry, changes=changes)
    return outcomes
