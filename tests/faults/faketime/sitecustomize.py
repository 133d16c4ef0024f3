"""Run one node's Python processes under libfaketime (tests only: on PYTHONPATH of a launch).

`kvs up` gives every node the same environment, so the clock of one node is chosen here, at
interpreter start: `FAKETIME_NODES="node2=/path/node2.rc,node3=/path/node3.rc"` names, per node
id (`KVS_NODE_ID`), the libfaketime timestamp file (`FAKETIME_TIMESTAMP_FILE`, e.g. `+3600`)
whose offset that node's clock runs at. A process of such a node re-executes itself at once with
libfaketime preloaded; its children (uvicorn workers) inherit the preload.

Only the wall clock is faked (`FAKETIME_DONT_FAKE_MONOTONIC=1`): with a faked monotonic clock,
every lock or event wait with a timeout (glibc's `sem_clockwait`, which libfaketime 0.9.10 does
not wrap) would wait the offset too. libfaketime 0.9.10 translates `clock_nanosleep` deadlines as
if the monotonic clock were faked even then, so `time.sleep` (an absolute `clock_nanosleep` on
the monotonic clock) fails with EINVAL or sleeps the offset; it is replaced here by a `select`
with a timeout, which libfaketime leaves alone.
"""

import os
import select
import sys
import time

LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
)


def library() -> str:
    for directory in LIBRARY_DIRS:
        path = os.path.join(directory, "libfaketimeMT.so.1")
        if os.path.exists(path):
            return path
    raise RuntimeError("libfaketime is not installed (Debian: apt-get install faketime)")


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        select.select([], [], [], left)


def _apply() -> None:
    files = dict(
        item.split("=", 1) for item in os.environ.get("FAKETIME_NODES", "").split(",") if item
    )
    timestamp_file = files.get(os.environ.get("KVS_NODE_ID", ""))
    if timestamp_file is None:
        return
    if "faketime" in os.environ.get("LD_PRELOAD", ""):
        time.sleep = _sleep
        return
    env = {
        **os.environ,
        "LD_PRELOAD": library(),
        "FAKETIME_TIMESTAMP_FILE": timestamp_file,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


_apply()
