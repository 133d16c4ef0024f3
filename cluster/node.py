"""This node's identity and mode, read once per process and cached."""

import secrets
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


def node_mode() -> str:
    """`read-only` if configured so, `syncing` until the first full sync, else `normal`."""
    if settings.KVS_READ_ONLY:
        return MODE_READ_ONLY
    if LocalNode.objects.filter(pk=1, syncing=True).exists():
        return MODE_SYNCING
    return MODE_NORMAL
