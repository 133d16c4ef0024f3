"""The cluster's background life, run by the node's Celery worker and beat."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from kv.hlc import wall_ms

from . import gossip
from .antientropy import merkle_sync
from .config import Config
from .node import node_syncing, node_syncing_set
from .replication import PUSH_PENDING, replicate_push
from .selectors import member_pick_random_alive, members_alive
from .transport import HttpTransport, TransportError

log = logging.getLogger(__name__)

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


def _replication_transport() -> HttpTransport:
    config = Config.from_settings()
    return HttpTransport(
        node_id=config.node_id, secret=config.secret, timeout_s=settings.KVS_REPLICATION_TIMEOUT
    )


@shared_task(ignore_result=True)
def replicate_push_all() -> int:
    """Push the change feed to every alive peer; the number of versions sent."""
    cache.delete(PUSH_PENDING)  # before reading the feed: later commits queue the next push
    transport, sent = _replication_transport(), 0
    for peer in members_alive():
        try:
            sent += replicate_push(transport, peer)
        except TransportError as error:  # the peer keeps its cursor; a later push resumes
            log.info("push to %s failed: %s", peer.node_id, error)
    return sent


@shared_task(ignore_result=True)
def anti_entropy_round() -> bool:
    """Merkle-sync with one random alive peer; leave `syncing` mode after the first success.

    Returns whether a sync completed. Safe to repeat: applying a version that is not newer is a
    no-op.
    """
    peer = member_pick_random_alive()
    if peer is None:
        return False
    try:
        report = merkle_sync(_replication_transport(), peer.url, peer_id=peer.node_id)
    except TransportError as error:
        log.info("anti-entropy with %s failed: %s", peer.node_id, error)
        return False
    if report.pulled or report.pushed:
        log.info(
            "anti-entropy with %s: %d buckets differed, pulled %d, pushed %d",
            peer.node_id, len(report.buckets), report.pulled, report.pushed,
        )  # fmt: skip
    if node_syncing() and not report.peer_syncing:
        node_syncing_set(False)
    return True
