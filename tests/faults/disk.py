"""A node's data directory on a small tmpfs, and a filler file that leaves it (nearly) full."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class MountFailed(RuntimeError):
    """The tmpfs could not be mounted (not root, or no mount namespace of our own)."""


@contextmanager
def tmpfs(path: Path, *, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MiB mounted at `path` (created) until the block ends; unmounted
    then, always."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}M,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise MountFailed(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def fill(path: Path, *, leave: int) -> None:
    """Write zeros to `path` until `leave` bytes are free on its file system (or none is)."""
    stats = os.statvfs(path.parent)
    size = stats.f_bavail * stats.f_frsize - leave
    chunk = b"\0" * (1 << 20)
    with path.open("wb") as out:
        try:
            while size > 0:
                out.write(chunk[: min(size, len(chunk))])
                size -= len(chunk)
            out.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
