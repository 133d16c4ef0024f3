"""The node's metrics directory, shared by every process of the node (prometheus_client's
multiprocess mode: each process writes its figures to files of its own there; a scrape adds them
up).

A node is several processes started separately: the web server's workers, the Celery worker (and
its beat), management commands. Each one joins the directory before it records anything, and
holds a lock file of its own (`process_<pid>.lock`) for as long as it lives; the kernel lets go of
the lock when the process ends, however it ends. Joining happens under `start.lock`, so that two
processes starting at once take turns:

- If no other process holds its lock, the node is starting (nothing of it runs): the directory is
  cleared, so that the node's counters start from zero and nothing of a previous run is added in.
- Otherwise the node is running (e.g. a web worker is replacing one that died, or the Celery worker
  restarts beside the web server): nothing is cleared, and the files of processes that have ended
  are swept (below).

Sweeping a process that has ended removes its `live*` gauge files (`mark_process_dead`: e.g. the
websockets it had open are no longer open) and its lock file; its counter and histogram files stay,
so that the node's totals never go back while the node runs. Scrapes sweep too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

START_LOCK = "start.lock"
PROCESS_LOCK = "process_{pid}.lock"
_PID_OF_FILE = re.compile(r"^(?:process_|.*_)(\d+)\.(?:lock|db)$")

_joined: dict[str, int] = {}  # directory -> the fd of this process's lock file there


def directory_join(path: Path) -> bool:
    """Make this process a member of the node's metrics directory at `path` until it exits;
    return whether this was the node's start (the directory was cleared)."""
    key = str(path)
    if key in _joined:
        return False
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _start_locked(path):
        others = processes_live(path)
        if others:
            _sweep(path, others)
        else:
            directory_clear(path)
        _joined[key] = _process_lock_take(path, os.getpid())
    return not others


def processes_live(path: Path) -> set[int]:
    """The pids, this process's excepted, whose lock file in `path` is held (by a live process)."""
    me, live = os.getpid(), set()
    for lock in path.glob(PROCESS_LOCK.format(pid="*")):
        pid = _pid_of(lock.name)
        if pid is None or pid == me:
            continue
        if _held_by_someone(lock):
            live.add(pid)
    return live


def dead_processes_sweep(path: Path) -> list[int]:
    """Forget the live gauges and lock files of the processes of `path` that have ended; return
    their pids."""
    with _start_locked(path):
        return _sweep(path, processes_live(path))


def directory_clear(path: Path) -> None:
    """Remove every file of `path` but the start lock (the node is not running)."""
    for item in path.iterdir():
        if item.name != START_LOCK and item.is_file():
            with contextlib.suppress(FileNotFoundError):
                item.unlink()


def _sweep(path: Path, live: set[int]) -> list[int]:
    # Imported here: prometheus_client chooses its storage when first imported (ops/metrics.py).
    from prometheus_client.multiprocess import mark_process_dead

    me = os.getpid()
    ended = set()
    for item in path.iterdir():
        pid = _pid_of(item.name)
        if pid is not None and pid != me and pid not in live:
            ended.add(pid)
    for pid in sorted(ended):
        mark_process_dead(pid, str(path))
        with contextlib.suppress(FileNotFoundError):
            (path / PROCESS_LOCK.format(pid=pid)).unlink()
    return sorted(ended)


def _pid_of(name: str) -> int | None:
    match = _PID_OF_FILE.match(name)
    return int(match.group(1)) if match else None


def _held_by_someone(lock: Path) -> bool:
    """Whether another open file holds `lock` locked."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # also lets go of the shared lock taken just now
    return False


def _process_lock_take(path: Path, pid: int) -> int:
    """Hold `process_<pid>.lock` (exclusively) through an fd kept open; the fd."""
    lock = path / PROCESS_LOCK.format(pid=pid)
    while True:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file a sweep removed just before we got the lock
            return fd
        os.close(fd)


@contextlib.contextmanager
def _start_locked(path: Path) -> Iterator[None]:
    fd = os.open(path / START_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _after_fork_in_child() -> None:
    """A forked child (Celery's embedded beat) is a process of its own: it holds a lock file of
    its own, and lets go of its parent's (which stays held by the parent)."""
    for key, parent_fd in list(_joined.items()):
        os.close(parent_fd)  # the parent's open file stays locked while the parent holds it
        path = Path(key)
        with _start_locked(path):
            _joined[key] = _process_lock_take(path, os.getpid())


os.register_at_fork(after_in_child=_after_fork_in_child)


def directory_leave(path: Path) -> None:
    """Stop being a member of `path` (this process's lock file goes); for tests, and for a
    process that moves to another node's directory."""
    fd = _joined.pop(str(path), None)
    if fd is not None:
        with contextlib.suppress(FileNotFoundError):
            (path / PROCESS_LOCK.format(pid=os.getpid())).unlink()
        os.close(fd)
