"""The silence timer: members not heard from become suspect, then dead."""

from __future__ import annotations

from .membership import ALIVE, DEAD, LEFT, MemberTable, member_dead, member_suspect


def members_check(
    table: MemberTable, *, now: int, suspect_after_ms: int, dead_after_ms: int
) -> list[str]:
    """Suspect members silent for `suspect_after_ms`, declare dead those silent for `dead_after_ms`.

    Returns the ids of the members whose status this changed.
    """
    changed = []
    for member in table.all():
        if member.node_id == table.self_id or member.status in (DEAD, LEFT):
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
