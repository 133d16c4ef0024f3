"""The silence timer: members not heard from become suspect, then dead; members dead or gone for
long are forgotten."""

from __future__ import annotations

import math

from .membership import ALIVE, DEAD, LEFT, MemberTable, member_dead, member_suspect


def members_check(
    table: MemberTable,
    *,
    now: int,
    suspect_after_ms: int,
    dead_after_ms: int,
    reap_after_ms: int | None = None,
) -> list[str]:
    """Suspect members silent for `suspect_after_ms`, declare dead those silent for `dead_after_ms`,
    and forget those dead or left for `reap_after_ms` (None: never).

    A forgotten member that comes back is added again by its first gossip, as a new member. News
    of it as dead or left is ignored once forgotten; news of it alive (from a peer that missed its
    death for that long) adds it back, and the timer starts over.

    Returns the ids of the members whose status this changed or who were forgotten.
    """
    changed = []
    for member in table.all():
        if member.node_id == table.self_id:
            continue
        if member.status in (DEAD, LEFT):
            if reap_after_ms is not None and now - member.status_changed_at >= reap_after_ms:
                table.remove(member.node_id)
                changed.append(member.node_id)
            continue
        silent = now - member.last_seen
        if silent >= dead_after_ms:
            member_dead(table, node_id=member.node_id, incarnation=member.incarnation, now=now)
        elif silent >= suspect_after_ms and member.status == ALIVE:
            member_suspect(table, node_id=member.node_id, incarnation=member.incarnation, now=now)
        else:
            continue
        changed.append(member.node_id)
    return changed


def timeouts_scaled(*, suspect_after_ms: int, dead_after_ms: int, members: int) -> tuple[int, int]:
    """The silence timeouts for a table of `members`: the configured ones up to 10 members, times
    log10(members) beyond (memberlist's scaling of its suspicion timeout).

    A heartbeat reaches every member through a chain of random exchanges, O(log n) rounds long,
    so in a large cluster the news of a live member is often older than a fixed timeout at some
    viewer: at 100 members and 2.5 s, hundreds of false suspicions with no message lost
    (docs/scaling.md). Scaling keeps them away at the price of detection growing with log n."""
    scale = max(1.0, math.log10(max(members, 1)))
    return round(suspect_after_ms * scale), round(dead_after_ms * scale)
