"""Periodic store upkeep, run by the node's Celery beat."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def entries_expire() -> int:
    """Turn keys past their TTL into expiry tombstones."""
    return services.entries_expire()


@shared_task(ignore_result=True)
def tombstones_purge() -> int:
    """Forget tombstones older than KVS_TOMBSTONE_TTL."""
    return services.tombstones_purge()
