"""The SWIM member state machine: alive, suspect, dead and left, ordered by incarnation.

Only a member raises its own incarnation: to refute an accusation, or to leave. So for news about a
member, a higher incarnation always wins; at the same incarnation the graver status wins (dead over
suspect over alive), and `left` is final for that incarnation. Merging tables by these rules is
commutative and idempotent, which is why gossip converges whatever order messages arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TypedDict

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
LEFT = "left"
STATUSES = (ALIVE, SUSPECT, DEAD, LEFT)
# At equal incarnation the higher rank wins.
RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2, LEFT: 3}


class MemberDigest(TypedDict):
    """One member as it travels in a gossip message (no local times)."""

    node_id: str
    url: str
    joined_at: int
    incarnation: int
    heartbeat: int
    status: str


@dataclass(frozen=True)
class MemberState:
    """One member as this node sees it; `last_seen` and `status_changed_at` are local ms."""

    node_id: str
    url: str
    joined_at: int
    incarnation: int = 0
    heartbeat: int = 0
    status: str = ALIVE
    last_seen: int = 0
    status_changed_at: int = 0

    def digest(self) -> MemberDigest:
        """This member as gossip carries it."""
        return MemberDigest(
            node_id=self.node_id,
            url=self.url,
            joined_at=self.joined_at,
            incarnation=self.incarnation,
            heartbeat=self.heartbeat,
            status=self.status,
        )

    def as_dict(self) -> dict:
        return asdict(self)


class MemberTable:
    """One node's member table in memory; remembers which rows changed, for saving."""

    def __init__(self, self_id: str, members: Iterable[MemberState] = ()) -> None:
        self.self_id = self_id
        self._members = {member.node_id: member for member in members}
        self.changed: set[str] = set()
        self.removed: set[str] = set()

    def get(self, node_id: str) -> MemberState | None:
        return self._members.get(node_id)

    def put(self, member: MemberState) -> None:
        """Store `member` as the new state of its row."""
        if self._members.get(member.node_id) != member:
            self._members[member.node_id] = member
            self.changed.add(member.node_id)
            self.removed.discard(member.node_id)

    def remove(self, node_id: str) -> None:
        """Forget `node_id` (never ourselves)."""
        if node_id != self.self_id and self._members.pop(node_id, None) is not None:
            self.changed.discard(node_id)
            self.removed.add(node_id)

    def all(self) -> list[MemberState]:
        """Every member, this node included, by node id."""
        return [self._members[node_id] for node_id in sorted(self._members)]

    @property
    def me(self) -> MemberState:
        return self._members[self.self_id]

    def digests(self) -> list[MemberDigest]:
        """The whole table as gossip carries it."""
        return [member.digest() for member in self.all()]


def member_self(table: MemberTable, *, url: str, joined_at: int, now: int) -> MemberState:
    """Our own row, created alive on first use; a new URL is announced with a new incarnation."""
    me = table.get(table.self_id)
    if me is None:
        me = MemberState(table.self_id, url, joined_at, last_seen=now, status_changed_at=now)
        table.put(me)
    elif me.url != url and me.status != LEFT:
        me = replace(me, url=url, incarnation=me.incarnation + 1)
        table.put(me)
    return me


def member_heard(
    table: MemberTable, *, node_id: str, now: int, heartbeat: int | None = None
) -> None:
    """Reset `node_id`'s silence timer: it answered us, or gossip brought a fresher heartbeat."""
    member = table.get(node_id)
    if member is None:
        return
    if heartbeat is not None and heartbeat <= member.heartbeat:
        return  # no news
    if node_id == table.self_id:
        if heartbeat is not None:  # our count restarted lower (a restored database): catch up
            table.put(replace(member, heartbeat=heartbeat))
        return
    heartbeat = member.heartbeat if heartbeat is None else heartbeat
    table.put(replace(member, heartbeat=heartbeat, last_seen=max(member.last_seen, now)))


def member_alive(
    table: MemberTable,
    *,
    node_id: str,
    url: str,
    joined_at: int,
    incarnation: int,
    heartbeat: int,
    now: int,
) -> None:
    """Accept `node_id` as alive at `incarnation`: a join, a refutation or a rejoin."""
    if node_id == table.self_id:
        if incarnation > table.me.incarnation:
            member_refute(table, incarnation=incarnation, now=now)  # an older life of ours
        return
    member = table.get(node_id)
    if member is None:
        table.put(MemberState(node_id, url, joined_at, incarnation, heartbeat, ALIVE, now, now))
        return
    if incarnation <= member.incarnation:
        return  # at the same incarnation, alive never overrides an accusation
    changed_at = now if member.status != ALIVE else member.status_changed_at
    table.put(
        replace(
            member,
            url=url,
            joined_at=joined_at,
            incarnation=incarnation,
            heartbeat=max(heartbeat, member.heartbeat),
            status=ALIVE,
            last_seen=now,
            status_changed_at=changed_at,
        )
    )


def member_suspect(table: MemberTable, *, node_id: str, incarnation: int, now: int) -> None:
    """Suspect `node_id` at `incarnation`; suspicion of ourselves is refuted instead."""
    _accuse(table, node_id=node_id, incarnation=incarnation, status=SUSPECT, now=now)


def member_dead(table: MemberTable, *, node_id: str, incarnation: int, now: int) -> None:
    """Declare `node_id` dead at `incarnation`; a report of our own death is refuted instead."""
    _accuse(table, node_id=node_id, incarnation=incarnation, status=DEAD, now=now)


def member_left(table: MemberTable, *, node_id: str, incarnation: int, now: int) -> None:
    """Record that `node_id` left gracefully at `incarnation` (final for that incarnation)."""
    _accuse(table, node_id=node_id, incarnation=incarnation, status=LEFT, now=now)


def member_refute(table: MemberTable, *, incarnation: int, now: int) -> None:
    """Declare ourselves alive at an incarnation above `incarnation`, which beats the accusation.

    Peers keep an accusation at its incarnation whatever heartbeat they hear; only a higher
    incarnation, which only we may issue, makes them accept us alive again.
    """
    me = table.me
    if me.status == LEFT:
        return  # we left on purpose: stay gone
    if incarnation < me.incarnation:
        return  # an accusation we already refuted
    table.put(replace(me, incarnation=incarnation + 1, status=ALIVE, status_changed_at=now))


def member_leave(table: MemberTable, *, now: int) -> MemberState:
    """Mark ourselves `left` at a new incarnation, so it beats every accusation of our old one."""
    me = table.me
    if me.status == LEFT:
        return me
    me = replace(me, incarnation=me.incarnation + 1, status=LEFT, status_changed_at=now)
    table.put(me)
    return me


def member_rejoin(table: MemberTable, *, now: int) -> MemberState:
    """Come back after leaving: alive at a new incarnation, which beats our own `left` one.

    Peers that still list us `left` accept the higher incarnation; peers that forgot us take us
    as a new member. `last_seen` stays as it was, so that our first round after the absence does
    not judge peers by it.
    """
    me = table.me
    if me.status != LEFT:
        return me
    me = replace(me, incarnation=me.incarnation + 1, status=ALIVE, status_changed_at=now)
    table.put(me)
    return me


def member_forget(table: MemberTable, *, node_id: str, incarnation: int | None = None) -> bool:
    """Forget `node_id` if it is dead or left (at most at `incarnation`, when given): whether it
    was. Ourselves, a live member and one that came back at a higher incarnation are kept."""
    member = table.get(node_id)
    if member is None or node_id == table.self_id or member.status not in (DEAD, LEFT):
        return False
    if incarnation is not None and member.incarnation > incarnation:
        return False
    table.remove(node_id)
    return True


def members_merge(table: MemberTable, digests: Iterable[MemberDigest], *, now: int) -> None:
    """Merge a peer's member table into ours, one member at a time, by the rules above."""
    for digest in digests:
        member = table.get(digest["node_id"])
        if member is not None and digest["incarnation"] >= member.incarnation:
            member_heard(table, node_id=digest["node_id"], heartbeat=digest["heartbeat"], now=now)
        if digest["status"] == ALIVE:
            member_alive(table, now=now, **digest_fields(digest))
        else:
            HANDLERS[digest["status"]](
                table, node_id=digest["node_id"], incarnation=digest["incarnation"], now=now
            )


def digest_fields(digest: MemberDigest) -> dict:
    """The fields of `digest` that member_alive takes."""
    return {key: digest[key] for key in ("node_id", "url", "joined_at", "incarnation", "heartbeat")}


def _accuse(table: MemberTable, *, node_id: str, incarnation: int, status: str, now: int) -> None:
    """Move `node_id` to a graver `status` at `incarnation` (suspect, dead or left)."""
    member = table.get(node_id)
    if member is None:
        return  # news of a member we never knew alive: nothing to accuse
    if incarnation < member.incarnation:
        return  # stale: the member has refuted it already
    if node_id == table.self_id:
        member_refute(table, incarnation=incarnation, now=now)
        return
    if incarnation == member.incarnation and RANK[member.status] >= RANK[status]:
        return  # nothing new, or graver news already held
    table.put(replace(member, incarnation=incarnation, status=status, status_changed_at=now))


HANDLERS = {SUSPECT: member_suspect, DEAD: member_dead, LEFT: member_left}
