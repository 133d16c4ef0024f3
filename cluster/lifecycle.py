"""A node's life in the cluster: it leaves, and when it starts again it rejoins.

Leaving marks the node `left` (its mode says so, client writes answer 503, it stops gossiping and
exchanging data, and peers stop exchanging data with it). The next start of the node's worker
brings it back: a new incarnation, which beats its own `left` one on every peer that still lists
it and makes it a new member on peers that forgot it, then `syncing` until an anti-entropy round
has caught it up, then `normal` — with the data it had. A node that left longer ago than
KVS_TOMBSTONE_TTL stays left: its peers may have purged tombstones of keys it still holds, which
it would bring back; it must rejoin with an empty database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery.signals import worker_ready
from django.conf import settings

from kv.hlc import wall_ms

from .config import Config
from .gossip import gossip_leave
from .membership import LEFT, MemberState, member_rejoin
from .node import node_flags_recheck, node_syncing_set
from .store import DbMemberStore, MemberStore
from .transport import Transport

log = logging.getLogger(__name__)

MEMBER = "member"  # had not left: nothing to do
REJOINED = "rejoined"
STAYED_LEFT = "stayed-left"  # left longer ago than KVS_TOMBSTONE_TTL


@dataclass(frozen=True)
class StartReport:
    """What a start did about membership, and how long ago the node had left (if it had)."""

    outcome: str
    incarnation: int
    away_s: float = 0.0


def node_leave(transport: Transport, now: int, *, config: Config | None = None) -> MemberState:
    """Leave the cluster: peers learn it at once, and this node's mode is `left` from now on."""
    me = gossip_leave(transport, now, config=config)
    node_flags_recheck()
    return me


def node_start(
    now: int, *, config: Config | None = None, store: MemberStore | None = None
) -> StartReport:
    """On start: a node that had left rejoins (syncing until anti-entropy has caught it up),
    unless it left longer ago than KVS_TOMBSTONE_TTL; then it stays left and says why."""
    config = config or Config.from_settings()
    store = store or DbMemberStore(config.node_id)
    with store.locked() as table:
        me = table.get(table.self_id)
        if me is None or me.status != LEFT:
            return StartReport(MEMBER, 0 if me is None else me.incarnation)
        away_s = (now - me.status_changed_at) / 1000
        if away_s > settings.KVS_TOMBSTONE_TTL:
            log.warning(
                "%s left the cluster %.0f s ago, longer than KVS_TOMBSTONE_TTL (%d s): its data"
                " could bring back keys deleted meanwhile, so it stays left. To rejoin, start it"
                " again with an empty database.",
                config.node_id,
                away_s,
                settings.KVS_TOMBSTONE_TTL,
            )
            return StartReport(STAYED_LEFT, me.incarnation, away_s)
        node_syncing_set(True)  # in the same transaction: never alive without catching up
        me = member_rejoin(table, now=now)
    node_flags_recheck()
    log.warning(
        "%s had left the cluster %.0f s ago; it rejoins at incarnation %d and syncs first",
        config.node_id,
        away_s,
        me.incarnation,
    )
    return StartReport(REJOINED, me.incarnation, away_s)


def _on_worker_ready(**kwargs) -> None:
    try:
        node_start(wall_ms())
    except Exception:  # a task boundary: the worker runs on, and the next start tries again
        log.exception("could not rejoin the cluster on start")


def connect_start() -> None:
    """Run `node_start` when this node's Celery worker is ready (each start of the node)."""
    worker_ready.connect(_on_worker_ready, dispatch_uid="kvs-node-start", weak=False)
