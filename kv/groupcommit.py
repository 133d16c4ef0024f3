"""Group commit: the client writes that arrive together in a process share one transaction.

Web requests run in threads. Each client write is queued; the first writer finding no batch
under way becomes the leader: it takes the store write lock (which also waits for the other
processes of the node, see kv.locking), takes every write queued by then (up to
KVS_GROUP_COMMIT_MAX) and applies them with `entries_apply_batch`, in queue order, with
consecutive revisions and one commit. Then it hands each writer its own outcome (a failed cas or
an ACL refusal fails only its own write) and passes the lead to the first write still queued.
While a leader waits for the lock or for the database, the next writes queue up: the more
writers, the larger the batches, with no timer and no wait for a single writer.

A write inside an open transaction (a test, an admin action, a form that saves two writes in one
savepoint) is applied at once in that transaction, as a batch of one: it cannot join another
thread's transaction.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection

from .batch import Outcome, Write, entries_apply_batch, entries_apply_taken


class _Queued:
    __slots__ = ("write", "keys", "outcome", "lead", "ready")

    def __init__(self, write: Write, keys: tuple[str, ...]) -> None:
        self.write, self.keys = write, keys
        self.outcome: Outcome | None = None
        self.lead = False
        self.ready = threading.Event()


_queue: deque[_Queued] = deque()
_mutex = threading.Lock()
_leading = False  # whether some thread of this process leads a batch now


def write_submit(write: Write, *, keys: tuple[str, ...] = ()) -> Any:
    """Apply `write` (reading `keys`) in the next batch of this process; return its result or
    raise its error."""
    global _leading
    if connection.in_atomic_block:
        return entries_apply_batch([write], keys=keys)[0].get()
    # the leader runs the write in the writer's context: the audit trail sees the writer's request
    queued = _Queued(partial(contextvars.copy_context().run, write), keys)
    with _mutex:
        _queue.append(queued)
        if not _leading:
            _leading = queued.lead = True
    if not queued.lead:
        queued.ready.wait()
    if queued.outcome is None:  # handed the lead
        _lead(queued)
    return queued.outcome.get()


def _lead(own: _Queued) -> None:
    """Under the store write lock, apply the writes queued by then (the leader's own is the first:
    the lead always goes to the head of the queue), then pass the lead on to the next queued write
    or give it up when none is left."""
    global _leading
    batch: list[_Queued] = []
    try:
        _apply(batch)
    except Exception as error:  # before anything was taken (the database is unreachable…)
        with _mutex:
            _queue.remove(own)
        own.outcome = Outcome(error=error)
    finally:
        for queued in batch:
            if queued.outcome is None:  # a bug or an interrupt: fail them, not hang them
                queued.outcome = Outcome(error=RuntimeError("The batch of this write failed."))
        with _mutex:
            following = _queue[0] if _queue else None
            if following is None:
                _leading = False
            else:
                following.lead = True
        for queued in batch:
            if not queued.lead:
                queued.ready.set()
        if following is not None:
            following.ready.set()


def _apply(batch: list[_Queued]) -> None:
    """Take the queued writes into `batch` once the store is locked and run them; if the database
    fails the batch, run each write alone so that the error lands on the write that caused it."""

    def take() -> tuple[list[Write], list[str]]:
        limit = settings.KVS_GROUP_COMMIT_MAX
        with _mutex:
            batch.extend(_queue.popleft() for _ in range(min(limit, len(_queue))))
        return [queued.write for queued in batch], [k for queued in batch for k in queued.keys]

    try:
        outcomes = entries_apply_taken(take)
    except Exception as error:
        if not batch:
            raise
        if len(batch) == 1:
            batch[0].outcome = Outcome(error=error)
            return
        for queued in batch:
            try:
                queued.outcome = entries_apply_batch([queued.write], keys=queued.keys)[0]
            except Exception as alone:
                queued.outcome = Outcome(error=alone)
        return
    for queued, outcome in zip(batch, outcomes, strict=True):
        queued.outcome = outcome
