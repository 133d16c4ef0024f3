"""The WAL checkpointer (kv.checkpoint): it copies the log without the store's lock, takes the
lock only to catch up with a long log, and the log starts over after it."""

import sqlite3
from contextlib import contextmanager

import pytest

from kv import checkpoint


@pytest.fixture
def wal_db(tmp_path):
    path = str(tmp_path / "wal.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies, as in the node
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield path, db
    db.close()
    checkpoint._local.__dict__.pop("conns", None)


def _write(db, n: int) -> None:
    db.executemany("INSERT INTO t (v) VALUES (?)", [["x" * 3000]] * n)


@pytest.fixture
def lock_taken(monkeypatch):
    taken = []

    @contextmanager
    def fake_lock():
        taken.append(True)
        yield

    monkeypatch.setattr(checkpoint, "store_write_lock", fake_lock)
    return taken


def test_a_short_log_is_copied_without_the_store_lock(wal_db, lock_taken):
    path, db = wal_db
    _write(db, 20)
    frames, copied, locked = checkpoint.wal_checkpoint(path, max_frames=1000)
    assert frames >= 20 and copied == frames and not locked
    assert lock_taken == []


def test_the_log_starts_over_after_a_complete_checkpoint(wal_db, lock_taken):
    path, db = wal_db
    _write(db, 50)
    first, _, _ = checkpoint.wal_checkpoint(path, max_frames=1000)
    _write(db, 1)  # this writer finds the log wholly copied: it writes from the start again
    frames, copied, _ = checkpoint.wal_checkpoint(path, max_frames=1000)
    assert frames < first and copied == frames


def test_a_long_log_is_started_over_under_the_store_lock(wal_db, lock_taken):
    path, db = wal_db
    _write(db, 40)
    frames, copied, locked = checkpoint.wal_checkpoint(path, max_frames=20)
    assert frames >= 40 and copied == frames and locked and lock_taken == [True]
    _write(db, 1)  # the next writer starts the log over
    frames, copied, locked = checkpoint.wal_checkpoint(path, max_frames=20)
    assert frames < 20 and copied == frames and not locked


def test_a_reader_on_the_log_postpones_its_restart_to_a_later_pass(wal_db, lock_taken):
    path, db = wal_db
    _write(db, 10)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM t").fetchone()  # holds a snapshot: pages after it stay
    _write(db, 30)
    frames, copied, locked = checkpoint.wal_checkpoint(path, max_frames=20)
    assert locked and copied < frames  # waited RESTART_WAIT_MS for the reader, then gave up
    reader.execute("COMMIT")
    frames, copied, locked = checkpoint.wal_checkpoint(path, max_frames=20)
    assert copied == frames and locked
    _write(db, 1)
    assert checkpoint.wal_checkpoint(path, max_frames=20)[0] < 20
    reader.close()


def test_no_checkpointer_for_an_in_memory_database(db):
    assert checkpoint.database_path() is None  # the test database is in memory
