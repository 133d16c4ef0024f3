"""The hybrid logical clock: 64-bit timestamps of wall milliseconds << 16 | a logical counter.

A node's clock never runs backwards and always moves past every timestamp it has seen, so a write
that causally follows another gets a larger hlc even when this node's wall clock lags.
"""

import time

COUNTER_BITS = 16


def wall_ms() -> int:
    """Milliseconds since the epoch, from the wall clock."""
    return time.time_ns() // 1_000_000


def hlc_tick(last: int, now_ms: int) -> int:
    """The timestamp of a local event: past both the wall clock and every hlc seen so far."""
    return max(now_ms << COUNTER_BITS, last + 1)


def hlc_observe(last: int, remote: int) -> int:
    """The clock after seeing a remote timestamp."""
    return max(last, remote)


def hlc_ms(hlc: int) -> int:
    """The wall-clock milliseconds part of an hlc."""
    return hlc >> COUNTER_BITS


def hlc_from_ms(ms: int) -> int:
    """The smallest hlc at wall-clock millisecond `ms`."""
    return ms << COUNTER_BITS
