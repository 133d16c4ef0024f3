"""The cluster's background life, run by the node's Celery worker and beat."""

from __future__ import annotations

import threading

from celery import shared_task

from kv.hlc import wall_ms

from . import gossip
from .config import Config
from .transport import HttpTransport

# At most two rounds at once per worker: a round waiting on a hung peer (up to the timeout) may
# overlap the next one, but rounds never pile up behind each other.
_rounds = threading.BoundedSemaphore(2)


@shared_task(ignore_result=True)
def gossip_round() -> int:
    """Run one gossip round; the number of peers that answered (0 if skipped)."""
    if not _rounds.acquire(blocking=False):
        return 0
    try:
        config = Config.from_settings()
        report = gossip.gossip_round(HttpTransport.from_config(config), wall_ms(), config=config)
        return len(report.answered)
    finally:
        _rounds.release()
