"""Scheduled backups, run by the node's Celery beat (KVS_BACKUP_SCHEDULE)."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def backup_scheduled() -> str:
    """Take a backup of this node, then prune those past KVS_BACKUP_RETENTION_DAYS."""
    backup = services.backup_create()
    services.backups_prune()
    return backup.id
