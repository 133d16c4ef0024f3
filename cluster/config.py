"""Every membership knob in one object, read from settings once per use."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings


@dataclass(frozen=True)
class Config:
    """Who this node is and how it gossips (see the `# --- Cluster ---` settings for each knob)."""

    node_id: str
    url: str
    joined_at: int
    secret: str = field(repr=False)
    seeds: tuple[str, ...] = ()
    fanout: int = 2
    probe_dead_chance: float = 0.25
    suspect_after_ms: int = 2_500
    dead_after_ms: int = 5_000
    reap_after_ms: int | None = None
    timeout_s: float = 1.0

    @classmethod
    def from_settings(cls) -> Config:
        """This node's configuration."""
        from .node import local_node

        node = local_node()
        return cls(
            node_id=node.node_id,
            url=settings.KVS_ADVERTISE_URL.rstrip("/"),
            joined_at=node.joined_at,
            secret=settings.KVS_CLUSTER_SECRET,
            seeds=tuple(seed.rstrip("/") for seed in settings.KVS_SEEDS if seed),
            fanout=settings.KVS_GOSSIP_FANOUT,
            probe_dead_chance=settings.KVS_GOSSIP_PROBE_DEAD,
            suspect_after_ms=round(settings.KVS_SUSPECT_AFTER * 1000),
            dead_after_ms=round(settings.KVS_DEAD_AFTER * 1000),
            reap_after_ms=(
                round(settings.KVS_REAP_AFTER * 1000) if settings.KVS_REAP_AFTER > 0 else None
            ),
            timeout_s=settings.KVS_GOSSIP_TIMEOUT,
        )
