"""Metrics files with their disk blocks reserved, so a full disk is an error, not a crash.

prometheus_client keeps each process's figures in memory-mapped files that it grows with
`truncate`: sparse files whose blocks are allocated when a page is first written. On a full disk
that first write finds no block and the kernel kills the process with SIGBUS (a web worker dies in
the middle of a request). Here every such file gets its blocks with `posix_fallocate` before it is
mapped or grown, so a full disk fails that step with OSError ENOSPC instead, which the process
survives (and the REST API answers 507, see kvsite.exceptions.storage_full).
"""

from __future__ import annotations

import os
import struct

from prometheus_client import mmap_dict

_installed = False


def reserve(fd: int, size: int) -> None:
    """Allocate the blocks of the first `size` bytes of the file (extending it to `size`)."""
    if os.fstat(fd).st_blocks * 512 >= size:
        return
    error = os.posix_fallocate(fd, 0, size)
    if error:  # posix_fallocate returns an errno on some Pythons instead of raising
        raise OSError(error, os.strerror(error))


def _entry_size(key: str) -> int:
    """The bytes `MmapedDict._init_value` appends for `key` (as it packs them)."""
    encoded = key.encode("utf-8")
    padded = encoded + (b" " * (8 - (len(encoded) + 4) % 8))
    return struct.calcsize(f"i{len(padded)}sdd")


def install() -> None:
    """Make prometheus_client's MmapedDict reserve its files' blocks (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    cls = mmap_dict.MmapedDict
    original_init, original_init_value = cls.__init__, cls._init_value

    def __init__(self, filename, read_mode=False):
        if not read_mode:
            fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                reserve(fd, max(os.fstat(fd).st_size, mmap_dict._INITIAL_MMAP_SIZE))
            finally:
                os.close(fd)
        original_init(self, filename, read_mode)

    def _init_value(self, key):
        needed, capacity = self._used + _entry_size(key), self._capacity
        while needed > capacity:
            capacity *= 2
        if capacity != self._capacity:
            reserve(self._f.fileno(), capacity)
        original_init_value(self, key)

    cls.__init__, cls._init_value = __init__, _init_value
