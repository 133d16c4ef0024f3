"""Taking, deleting and pruning this node's backups (restoring: backups.restore)."""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from kv.hlc import wall_ms

from .fileformat import BackupWriter
from .models import Backup
from .selectors import backup_dir, backup_get
from .snapshot import snapshot_write

SUFFIX = ".jsonl.zst"
PARTIAL = ".partial"


def backup_write(path: Path, *, now: int | None = None) -> tuple[dict, int, str]:
    """Write a backup of this node to `path` (via a temporary file beside it, renamed once whole
    and on disk); return its header, size and SHA-256."""
    temporary = path.with_name(path.name + PARTIAL)
    try:
        with open(temporary, "wb") as out:
            writer = BackupWriter(out)
            header = snapshot_write(writer, now=now)
            size, sha256 = writer.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return header, size, sha256


def _backup_id(node: str | None, created_at: int) -> str:
    moment = datetime.fromtimestamp(created_at / 1000, tz=UTC).strftime("%Y%m%dT%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", node or "node")[:40]
    return f"{name}-{moment}{created_at % 1000:03d}Z-{secrets.token_hex(2)}"


def backup_create(*, now: int | None = None) -> Backup:
    """Take a backup of this node into KVS_BACKUP_DIR; return it once the file is complete."""
    directory = backup_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = wall_ms() if now is None else now
    placeholder = directory / f"pending-{secrets.token_hex(8)}{SUFFIX}"
    header, size, sha256 = backup_write(placeholder, now=now)
    backup_id = _backup_id(header["node"], header["created_at"])
    path = directory / f"{backup_id}{SUFFIX}"
    os.replace(placeholder, path)
    return Backup.objects.create(
        id=backup_id,
        file=path.name,
        created_at=header["created_at"],
        size=size,
        keys=header["keys"],
        sha256=sha256,
        node=header["node"] or "",
        revision=header["revision"],
        merkle_root=header["merkle_root"],
    )


def backup_delete(*, backup_id: str) -> None:
    """Delete a backup's file and its row; NotFound if there is none."""
    backup = backup_get(backup_id=backup_id)
    (backup_dir() / backup.file).unlink(missing_ok=True)
    backup.delete()


def backups_prune(*, now: float | None = None) -> int:
    """Delete the backup files in KVS_BACKUP_DIR older (by mtime) than KVS_BACKUP_RETENTION_DAYS,
    with their rows, and rows whose file is gone; return how many files were deleted. A
    retention of 0 keeps every backup."""
    days = settings.KVS_BACKUP_RETENTION_DAYS
    directory = backup_dir()
    if days <= 0 or not directory.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = 0
    for path in directory.iterdir():
        if not (path.name.endswith(SUFFIX) or path.name.endswith(SUFFIX + PARTIAL)):
            continue  # not ours: leave it
        try:
            old = path.stat().st_mtime < cutoff
        except FileNotFoundError:
            continue
        if old:
            path.unlink(missing_ok=True)
            removed += 1
    present = {path.name for path in directory.iterdir()}
    Backup.objects.exclude(file__in=present).delete()
    return removed
