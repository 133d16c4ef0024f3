"""This node's identity and mode, read once per process and cached."""

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from kv.hlc import wall_ms

from .models import LocalNode, Member

MODE_NORMAL = "normal"
MODE_READ_ONLY = "read-only"
MODE_SYNCING = "syncing"
MODE_LEFT = "left"


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


@dataclass(frozen=True)
class NodeFlags:
    """What this node's mode is made of, besides settings."""

    syncing: bool = False  # in its first sync, or catching up after a rejoin
    left: bool = False  # its own member row is `left`: out of the cluster until it restarts


# (monotonic deadline, flags): the flags are read at most once a second per process.
_flags_seen: tuple[float, NodeFlags] = (0.0, NodeFlags())
FLAGS_RECHECK_S = 1.0


def _flags() -> NodeFlags:
    """This node's flags, from one query at most every FLAGS_RECHECK_S per process (while
    syncing, every time: the end of the sync must show at once)."""
    global _flags_seen
    deadline, flags = _flags_seen
    now = time.monotonic()
    if now >= deadline or flags.syncing:
        me = Member.objects.filter(node_id=OuterRef("node_id"), status=Member.Status.LEFT)
        row = (
            LocalNode.objects.filter(pk=1)
            .annotate(left=Exists(me))
            .values_list("syncing", "left")
            .first()
        )
        flags = NodeFlags(*row) if row is not None else NodeFlags()
        _flags_seen = (now + FLAGS_RECHECK_S, flags)
    return flags


def node_syncing() -> bool:
    """Whether this node is syncing: its first sync, or the catch-up after a rejoin."""
    return _flags().syncing


def node_syncing_set(syncing: bool) -> None:
    """Enter or leave `syncing` mode (client writes answer 503 while syncing)."""
    local_node()
    LocalNode.objects.filter(pk=1).update(syncing=syncing)
    node_flags_recheck()


def node_flags_recheck() -> None:
    """Read the flags again on next use (after this process changed them)."""
    global _flags_seen
    _flags_seen = (0.0, _flags_seen[1])


def node_mode() -> str:
    """`left` once this node has left the cluster, `read-only` if configured so, `syncing`
    until the first full sync (or the catch-up after a rejoin), else `normal`."""
    flags = _flags()
    if flags.left:
        return MODE_LEFT
    if settings.KVS_READ_ONLY:
        return MODE_READ_ONLY
    if flags.syncing:
        return MODE_SYNCING
    return MODE_NORMAL


def node_cache_clear() -> None:
    """Forget the cached identity and mode (tests, and after the node's rows change under us)."""
    global _flags_seen
    local_node.cache_clear()
    _flags_seen = (0.0, NodeFlags())
