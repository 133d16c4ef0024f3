"""One store writer at a time on SQLite, queued in the kernel instead of in SQLite's busy loop.

SQLite lets one transaction write at a time; a second writer retries with growing sleeps (up to
100 ms each), which under load gives a long, unfair latency tail. Writers therefore take a
process-wide lock and an exclusive `flock` on a file beside the database before they begin:
waiters are woken the moment the holder is done. PostgreSQL needs none of this (the store state
row lock orders writers), so the lock is a no-op there.
"""

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_thread_lock = threading.Lock()
_held = threading.local()
_lock_file: dict[str, int] = {}


def _lock_fd() -> int | None:
    """A descriptor of `<database>.lock`, or None for an in-memory database."""
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    if name not in _lock_file:
        _lock_file[name] = os.open(f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    return _lock_file[name]


@contextmanager
def store_write_lock() -> Iterator[None]:
    """Hold the store's writer lock (re-entrant within a thread).

    Inside an already open transaction the lock is skipped: on SQLite that transaction began
    IMMEDIATE and so already holds the database's write lock, and waiting for the file lock while
    holding it could deadlock with a writer that holds the file lock and waits for the database.
    """
    if connection.vendor != "sqlite" or getattr(_held, "depth", 0) or connection.in_atomic_block:
        _held.depth = getattr(_held, "depth", 0) + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    with _thread_lock:
        fd = _lock_fd()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
