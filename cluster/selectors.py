"""Reads of the member table."""

from __future__ import annotations

import random

from kv.hlc import wall_ms

from .config import Config
from .membership import ALIVE, STATUSES, MemberState
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
    """The peers (not this node) currently believed alive."""
    node_id = Config.from_settings().node_id
    rows = Member.objects.filter(status=ALIVE).exclude(node_id=node_id)
    return [member_state(row) for row in rows]


def member_pick_random_alive() -> MemberState | None:
    """One alive peer at random, or None when there is none."""
    alive = members_alive()
    return random.choice(alive) if alive else None
