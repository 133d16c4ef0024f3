"""The node's metrics directory: cleared when the node starts, kept while any process of it runs,
and rid of the live gauges of processes that have ended."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ops import multiproc

JOIN_AND_WAIT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ops import multiproc
    path = Path(sys.argv[1])
    started = multiproc.directory_join(path)
    (path / f"gauge_livesum_{__import__('os').getpid()}.db").write_bytes(b"")
    (path / f"counter_{__import__('os').getpid()}.db").write_bytes(b"")
    print("started" if started else "joined", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    """
)


class OtherProcess:
    """Another process of the node: joins the directory, writes a live gauge and a counter file,
    and lives until `end()`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", JOIN_AND_WAIT, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        self.said = self.proc.stdout.readline().strip()  # blocks until it has joined
        self.pid = self.proc.pid

    def end(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "metrics"
    yield path
    multiproc.directory_leave(path)


def test_the_first_process_of_a_node_clears_what_a_previous_run_left(directory):
    directory.mkdir()
    for name in ("counter_41.db", "histogram_41.db", "gauge_livesum_41.db", "process_41.lock"):
        (directory / name).write_bytes(b"old")
    assert multiproc.directory_join(directory) is True
    assert {p.name for p in directory.iterdir()} == {
        multiproc.START_LOCK,
        f"process_{os.getpid()}.lock",
    }


def test_a_process_joining_a_running_node_clears_nothing(directory):
    other = OtherProcess(directory)
    try:
        assert other.said == "started"
        assert multiproc.directory_join(directory) is False
        assert (directory / f"counter_{other.pid}.db").exists()
        assert (directory / f"gauge_livesum_{other.pid}.db").exists()
        assert multiproc.processes_live(directory) == {other.pid}
    finally:
        other.end()


def test_a_process_that_ended_keeps_its_counters_but_not_its_live_gauges(directory):
    multiproc.directory_join(directory)
    other = OtherProcess(directory)
    assert other.said == "joined"  # we were running already
    assert multiproc.dead_processes_sweep(directory) == []  # it is alive: nothing swept
    other.end()
    assert multiproc.dead_processes_sweep(directory) == [other.pid]
    names = {p.name for p in directory.iterdir()}
    assert f"counter_{other.pid}.db" in names  # the node's totals do not go back
    assert f"gauge_livesum_{other.pid}.db" not in names  # what it held open is not open
    assert f"process_{other.pid}.lock" not in names
    assert f"process_{os.getpid()}.lock" in names  # our own is never swept


def test_once_every_process_has_ended_the_next_start_clears_the_directory(directory):
    other = OtherProcess(directory)
    other.end()
    again = OtherProcess(directory)
    try:
        assert again.said == "started"
        assert not (directory / f"counter_{other.pid}.db").exists()
    finally:
        again.end()


def _report_locks(path: str, queue, done) -> None:
    queue.put((multiproc.processes_live(Path(path)), os.getpid()))
    done.wait(30)


def test_a_forked_child_holds_a_lock_of_its_own(directory):
    multiproc.directory_join(directory)
    fork = multiprocessing.get_context("fork")
    queue, done = fork.Queue(), fork.Event()
    child = fork.Process(target=_report_locks, args=(str(directory), queue, done))
    child.start()
    try:
        live_seen_by_child, child_pid = queue.get(timeout=30)
        assert live_seen_by_child == {os.getpid()}  # its parent's lock stays the parent's
        assert multiproc.processes_live(directory) == {child_pid}  # and it holds its own
    finally:
        done.set()
        child.join(timeout=30)
    assert multiproc.processes_live(directory) == set()
