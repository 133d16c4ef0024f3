"""Reads of this node's backups."""

from pathlib import Path

from django.conf import settings

from kvsite.exceptions import NotFound

from .models import Backup


def backup_dir() -> Path:
    return Path(settings.KVS_BACKUP_DIR)


def backups_list() -> list[Backup]:
    """This node's backups whose file is still there, newest first."""
    directory = backup_dir()
    return [b for b in Backup.objects.order_by("-created_at") if (directory / b.file).is_file()]


def backup_get(*, backup_id: str) -> Backup:
    """The backup `backup_id` and its file; NotFound if either is gone."""
    backup = Backup.objects.filter(pk=backup_id).first()
    if backup is None or not (backup_dir() / backup.file).is_file():
        raise NotFound(f"No backup {backup_id!r}.")
    return backup


def backup_path(backup: Backup) -> Path:
    return backup_dir() / backup.file


def newest_backup_at() -> float | None:
    """When (seconds since the epoch) this node's newest backup still on disk was taken."""
    newest = next(iter(backups_list()), None)
    return newest.created_at / 1000 if newest is not None else None
