"""How long this node's web server has been up: one answer, whichever web worker gives it.

`kvs serve` notes the moment it starts in KVS_SERVER_STARTED, which its web workers inherit
(those that replace a dead worker too). The clock is CLOCK_MONOTONIC: one clock for every process
of a machine, which never jumps when the wall clock is set. Served any other way (the test
client, `manage.py runserver`, a bare uvicorn) a process counts from its own start.
"""

from __future__ import annotations

import time

from django.conf import settings

STARTED_ENV = "KVS_SERVER_STARTED"


def clock() -> float:
    """Seconds on the machine-wide monotonic clock."""
    if hasattr(time, "CLOCK_MONOTONIC"):
        return time.clock_gettime(time.CLOCK_MONOTONIC)
    return time.monotonic()  # pragma: no cover (no clock_gettime: Windows)


PROCESS_STARTED = clock()


def server_uptime_s(*, now: float | None = None) -> float:
    """Seconds since this node's web server started (else since this process started)."""
    now = clock() if now is None else now
    started = settings.KVS_SERVER_STARTED
    if started is None or started > now:  # unset, or left over from before a reboot
        started = PROCESS_STARTED
    return max(0.0, now - started)
