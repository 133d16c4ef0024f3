"""SQLite WAL checkpoints off the write path.

In WAL mode every commit appends the pages it changed to the write-ahead log, and a checkpoint
copies them back into the database file and syncs it. By default SQLite runs that checkpoint
inside the commit that takes the log past 1,000 pages: here that was every ~50 single-key writes,
8–15 ms each (two fsyncs), spent holding the store's write lock while every other writer of the
node waited behind it.

Instead, each process that commits batches pokes a checkpointer thread of its own (at most one
checkpoint per KVS_SQLITE_CHECKPOINT_DELAY), which runs a PASSIVE checkpoint on a connection of
its own: it copies what the log holds while writers go on appending, without the store's lock.
Durability is unchanged: commits are as synchronous as before (synchronous=NORMAL), and a
checkpoint syncs the log before copying and the database file after, as SQLite's own does.

The log starts over from its beginning only when a writer finds it wholly copied and no reader
still reading from it, so under writes (and reads) that never pause it would only grow. Once it
holds KVS_SQLITE_WAL_MAX_FRAMES pages, the checkpointer takes the store's write lock, copies the
few pages written since its last pass and waits (at most RESTART_WAIT_MS) for the readers still
on the log to finish, so that the next write starts the log over: a short pause of the writers
once per that many pages. SQLite's own automatic checkpoint stays as a last resort, at four times
that size (settings.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from django.conf import settings
from django.db import connection

from kvsite.debounce import Debounce

from .locking import store_write_lock

log = logging.getLogger(__name__)

_local = threading.local()  # the checkpointer thread's own sqlite3 connection, by path


def database_path() -> str | None:
    """The file of the default SQLite database, or None (PostgreSQL, or an in-memory one)."""
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    return name


def _connection(path: str) -> sqlite3.Connection:
    conns = _local.__dict__.setdefault("conns", {})
    if path not in conns:
        # timeout 0: a PASSIVE checkpoint never waits; it copies what it can and returns
        conns[path] = sqlite3.connect(path, timeout=0, isolation_level=None)
    return conns[path]


RESTART_WAIT_MS = 50  # how long a restarting checkpoint waits for the log's last readers


def wal_checkpoint(path: str, *, max_frames: int) -> tuple[int, int, bool]:
    """Copy the log of the database at `path` into it; return (pages in the log, pages copied,
    whether the store's write lock was taken to start over a log of `max_frames` or more)."""
    db = _connection(path)
    _busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames < max_frames:
        return frames, copied, False
    with store_write_lock():  # no write of the node is under way while the log is made to restart
        db.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            _busy, frames, copied = db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.OperationalError:  # a writer outside the store lock: the next pass retries
            log.info("WAL restart postponed: the database is busy")
        finally:
            db.execute("PRAGMA busy_timeout = 0")
    return frames, copied, True


def _checkpoint() -> None:
    path = database_path()
    if path is not None:
        wal_checkpoint(path, max_frames=settings.KVS_SQLITE_WAL_MAX_FRAMES)


_soon = Debounce(_checkpoint, delay_s=settings.KVS_SQLITE_CHECKPOINT_DELAY)


def _on_entries_applied(sender, **kwargs) -> None:
    if settings.KVS_SQLITE_CHECKPOINT_DELAY >= 0 and database_path() is not None:
        _soon.poke()


def connect_checkpoints() -> None:
    """Checkpoint the log of this process's commits in the background."""
    from .signals import entries_applied

    entries_applied.connect(_on_entries_applied, dispatch_uid="kvs-wal-checkpoint")
