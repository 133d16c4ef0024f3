"""Periodic work of the audit trail."""

from celery import shared_task

from .services import events_prune


@shared_task
def audit_prune() -> int:
    """Prune events past KVS_AUDIT_RETENTION_DAYS (safe to repeat: nothing old is left)."""
    return events_prune()
