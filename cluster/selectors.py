"""Reads of the member table."""

from __future__ import annotations

import random

from kv.hlc import wall_ms

from .config import Config
from .membership import ALIVE, LEFT, STATUSES, SUSPECT, MemberState
from .models import Member
from .store import member_state


def members_list() -> list[MemberState]:
    """Every member this node knows, itself included (alive, before its first gossip round)."""
    config = Config.from_settings()
    members = [member_state(row) for row in Member.objects.all()]
    if not any(member.node_id == config.node_id for member in members):
        now = wall_ms()
        me = MemberState(config.node_id, config.url, config.joined_at, last_seen=now)
        members = sorted([*members, me], key=lambda member: member.node_id)
    return members


def members_count() -> dict[str, int]:
    """How many members have each status, this node included."""
    counts = dict.fromkeys(STATUSES, 0)
    for member in members_list():
        counts[member.status] += 1
    return counts


def members_alive() -> list[MemberState]:
    """The peers this node exchanges data with: those believed alive, none once it has left."""
    return _peers(ALIVE)


def members_live() -> list[MemberState]:
    """The peers believed alive or suspect (none once this node has left): whom a cluster-wide
    view asks."""
    return _peers(ALIVE, SUSPECT)


def _peers(*statuses: str) -> list[MemberState]:
    node_id = Config.from_settings().node_id
    rows = list(Member.objects.filter(status__in=[*statuses, LEFT]))
    if any(row.node_id == node_id and row.status == LEFT for row in rows):
        return []  # we left: no data goes to or comes from anyone
    return [member_state(r) for r in rows if r.node_id != node_id and r.status in statuses]


def peer_refusal(node_id: str) -> tuple[str, str] | None:
    """Why this node will not exchange data with the peer `node_id` now, as (code, detail), or
    None if it will: this node has left, or the peer left or is not a member (forgotten, or not
    joined yet). A peer merely believed dead is admitted: its request shows it is back."""
    me = Config.from_settings().node_id
    statuses = dict(
        Member.objects.filter(node_id__in=[me, node_id]).values_list("node_id", "status")
    )
    if statuses.get(me) == LEFT:
        return "left", f"{me} has left the cluster."
    if node_id not in statuses:
        return "not_a_member", f"{node_id} is not a member of the cluster here."
    if statuses[node_id] == LEFT:
        return "not_a_member", f"{node_id} has left the cluster."
    return None


def member_pick_random_alive() -> MemberState | None:
    """One alive peer at random, or None when there is none."""
    alive = members_alive()
    return random.choice(alive) if alive else None
