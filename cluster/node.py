"""This node's identity and mode, read once per process and cached."""

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import transaction

from kv.hlc import wall_ms

from .models import LocalNode

MODE_NORMAL = "normal"
MODE_READ_ONLY = "read-only"
MODE_SYNCING = "syncing"


@dataclass(frozen=True)
class NodeIdentity:
    node_id: str
    joined_at: int


@lru_cache(maxsize=1)
def local_node() -> NodeIdentity:
    """This node's id and join time, created on first use (the configured id wins)."""
    with transaction.atomic():
        row = LocalNode.objects.select_for_update().filter(pk=1).first()
        if row is None:
            row = LocalNode.objects.create(
                pk=1,
                node_id=settings.KVS_NODE_ID or f"node-{secrets.token_hex(4)}",
                joined_at=wall_ms(),
            )
        elif settings.KVS_NODE_ID and row.node_id != settings.KVS_NODE_ID:
            row.node_id = settings.KVS_NODE_ID
            row.save(update_fields=["node_id"])
    return NodeIdentity(node_id=row.node_id, joined_at=row.joined_at)


# (monotonic deadline, syncing): the flag is read at most once a second per process.
_syncing_seen: tuple[float, bool] = (0.0, False)
SYNCING_RECHECK_S = 1.0


def node_syncing() -> bool:
    """Whether this node is still in its first sync (a "no" is cached for SYNCING_RECHECK_S)."""
    global _syncing_seen
    deadline, syncing = _syncing_seen
    now = time.monotonic()
    if now >= deadline or syncing:  # while syncing, look every time: the end must show at once
        syncing = LocalNode.objects.filter(pk=1, syncing=True).exists()
        _syncing_seen = (now + SYNCING_RECHECK_S, syncing)
    return syncing


def node_syncing_set(syncing: bool) -> None:
    """Enter or leave `syncing` mode (client writes answer 503 while syncing)."""
    global _syncing_seen
    local_node()
    LocalNode.objects.filter(pk=1).update(syncing=syncing)
    _syncing_seen = (time.monotonic() + SYNCING_RECHECK_S, syncing)


def node_mode() -> str:
    """`read-only` if configured so, `syncing` until the first full sync, else `normal`."""
    if settings.KVS_READ_ONLY:
        return MODE_READ_ONLY
    if node_syncing():
        return MODE_SYNCING
    return MODE_NORMAL


def node_cache_clear() -> None:
    """Forget the cached identity and mode (tests, and after the node's rows change under us)."""
    global _syncing_seen
    local_node.cache_clear()
    _syncing_seen = (0.0, False)
