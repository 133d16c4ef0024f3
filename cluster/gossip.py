"""Gossip rounds: bump our heartbeat, pushPull member tables with a few peers, run the timer.

Join is a pushPull with a seed while we know no live member; leave is a pushPull of our `left`
row with every live peer, after which our rounds stop.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from kvsite.exceptions import Conflict, NotFound

from .config import Config
from .membership import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    MemberState,
    MemberTable,
    member_forget,
    member_heard,
    member_leave,
    member_self,
    members_merge,
)
from .messages import GossipMessage, InvalidMessage, gossip_message, gossip_message_parse
from .signing import ANY_NODE
from .store import DbMemberStore, MemberStore
from .suspicion import members_check, timeouts_scaled
from .transport import Transport, TransportError

GOSSIP_PATH = "/cluster/internal/gossip"
FORGET_PATH = "/cluster/internal/forget"

logger = logging.getLogger(__name__)
# Shared by every round of the process: peers are contacted concurrently, threads are reused.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kvs-gossip")


@dataclass
class RoundReport:
    """What one round did: whom it contacted, who answered, whose status its timer changed."""

    contacted: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    skipped: bool = False


def gossip_round(
    transport: Transport,
    now: int,
    *,
    config: Config | None = None,
    store: MemberStore | None = None,
    rng: random.Random | None = None,
) -> RoundReport:
    """One round at `now` (ms): bump our heartbeat, pushPull with a few peers, run the timer."""
    config = config or Config.from_settings()
    store = store or DbMemberStore(config.node_id)
    with store.locked() as table:
        me = member_self(table, url=config.url, joined_at=config.joined_at, now=now)
        if me.status == LEFT:
            return RoundReport(skipped=True)  # we left: stay quiet
        # Our last round was long ago (a paused or overloaded process): our silence timers
        # measured our own absence, so give peers this round's exchange before judging them.
        paused = now - me.last_seen >= config.suspect_after_ms
        table.put(replace(me, heartbeat=me.heartbeat + 1, last_seen=now))
        targets = gossip_targets(table, config, rng or random.Random())
        message = gossip_message(table)
    replies = push_pull(transport, targets, message, timeout_s=config.timeout_s)
    with store.locked() as table:
        for reply in replies:
            _absorb(table, reply, now=now)
        changed = [] if paused else _check(table, config, now)
    answered = [reply["from"] for reply in replies]
    return RoundReport(contacted=list(targets), answered=answered, changed=changed)


def gossip_receive(
    message: GossipMessage,
    now: int,
    *,
    config: Config | None = None,
    store: MemberStore | None = None,
) -> GossipMessage:
    """Our side of a pushPull: merge the sender's table into ours, answer with ours."""
    config = config or Config.from_settings()
    store = store or DbMemberStore(config.node_id)
    with store.locked() as table:
        member_self(table, url=config.url, joined_at=config.joined_at, now=now)
        _absorb(table, message, now=now)
        return gossip_message(table)


def gossip_leave(
    transport: Transport,
    now: int,
    *,
    config: Config | None = None,
    store: MemberStore | None = None,
) -> MemberState:
    """Leave the cluster: mark ourselves `left` and pushPull that with every live peer at once."""
    config = config or Config.from_settings()
    store = store or DbMemberStore(config.node_id)
    with store.locked() as table:
        member_self(table, url=config.url, joined_at=config.joined_at, now=now)
        me = member_leave(table, now=now)
        targets = {m.url: m.node_id for m in _peers(table) if m.status in (ALIVE, SUSPECT)}
        message = gossip_message(table)
    replies = push_pull(transport, targets, message, timeout_s=config.timeout_s)
    with store.locked() as table:
        for reply in replies:
            _absorb(table, reply, now=now)
    return me


@dataclass
class ForgetReport:
    """Who forgot a member: this node, then the peers that confirmed or could not be reached."""

    node_id: str
    forgotten_by: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


def gossip_forget(
    transport: Transport,
    node_id: str,
    *,
    config: Config | None = None,
    store: MemberStore | None = None,
) -> ForgetReport:
    """Forget a dead or departed member now (rather than after KVS_REAP_AFTER), here and on every
    live peer. A peer that cannot be reached forgets it when its own reap time comes.

    NotFound for a member unknown here; Conflict for ourselves or a live (or suspect) member."""
    config = config or Config.from_settings()
    store = store or DbMemberStore(config.node_id)
    if node_id == config.node_id:
        raise Conflict(f"{node_id!r} is this node: only other members can be forgotten.")
    with store.locked() as table:
        member = table.get(node_id)
        if member is None:
            raise NotFound(f"No member {node_id!r} is known here.")
        if not member_forget(table, node_id=node_id):
            raise Conflict(
                f"{node_id!r} is {member.status}: only a dead or departed member can be forgotten."
            )
        peers = {m.url: m.node_id for m in _peers(table) if m.status in (ALIVE, SUSPECT)}
    request = {"node_id": node_id, "incarnation": member.incarnation}
    answers = send_to_all(transport, peers, FORGET_PATH, request, timeout_s=config.timeout_s)
    return ForgetReport(
        node_id=node_id,
        forgotten_by=[config.node_id] + [peers[url] for url in peers if answers[url] is not None],
        unreachable=sorted(peers[url] for url in peers if answers[url] is None),
    )


def forget_receive(
    node_id: str,
    incarnation: int,
    *,
    config: Config | None = None,
    store: MemberStore | None = None,
) -> bool:
    """A peer's request to forget `node_id` as it knew it (at most `incarnation`)."""
    config = config or Config.from_settings()
    store = store or DbMemberStore(config.node_id)
    with store.locked() as table:
        return member_forget(table, node_id=node_id, incarnation=incarnation)


def gossip_targets(table: MemberTable, config: Config, rng: random.Random) -> dict[str, str]:
    """URL → node id for this round: `fanout` live peers (alive first), now and then a dead one
    to probe, and the seeds while we know no live peer (join). A seed's id is not known yet: its
    requests are signed for ANY_NODE, which only the gossip endpoint accepts."""
    peers = _peers(table)
    alive = [m for m in peers if m.status == ALIVE]
    suspect = [m for m in peers if m.status == SUSPECT]
    dead = [m for m in peers if m.status == DEAD]
    chosen = rng.sample(alive, min(config.fanout, len(alive)))
    chosen += rng.sample(suspect, min(config.fanout - len(chosen), len(suspect)))
    if dead and rng.random() < config.probe_dead_chance:
        chosen.append(rng.choice(dead))
    targets: dict[str, str] = {}
    for m in chosen:
        targets.setdefault(m.url, m.node_id)
    if not alive and not suspect:
        seeds = [seed for seed in config.seeds if seed != config.url and seed not in targets]
        for seed in rng.sample(seeds, min(config.fanout, len(seeds))):
            targets[seed] = ANY_NODE
    return targets


def send_to_all(
    transport: Transport,
    targets: dict[str, str],
    path: str,
    payload: dict,
    *,
    timeout_s: float,
) -> dict[str, dict | None]:
    """POST `payload` to `path` of every node (URL → node id) concurrently: URL → answer, None
    where the request failed or no answer came in time."""
    futures = {
        _pool.submit(transport.send, url, path, payload, to=node_id): url
        for url, node_id in targets.items()
    }
    done, late = wait(futures, timeout=2 * timeout_s + 0.5)
    answers: dict[str, dict | None] = dict.fromkeys(targets)
    for future in done:
        try:
            answers[futures[future]] = future.result()
        except TransportError as error:
            logger.info("%s on %s failed: %s", path, futures[future], error)
    for future in late:
        logger.info("%s on %s: no answer in time", path, futures[future])
    return answers


def push_pull(
    transport: Transport, targets: dict[str, str], message: GossipMessage, *, timeout_s: float
) -> list[GossipMessage]:
    """Send `message` to every node (URL → node id) concurrently; the valid answers that came
    back in time."""
    replies = []
    answers = send_to_all(transport, targets, GOSSIP_PATH, message, timeout_s=timeout_s)
    for url, answer in answers.items():
        if answer is None:
            continue
        try:
            reply = gossip_message_parse(answer)
        except InvalidMessage as error:
            logger.info("pushPull with %s failed: %s", url, error)
            continue
        if targets[url] not in (ANY_NODE, reply["from"]):
            logger.info("pushPull with %s: answered as %r", url, reply["from"])
            continue
        replies.append(reply)
    return replies


def _peers(table: MemberTable) -> list[MemberState]:
    return [m for m in table.all() if m.node_id != table.self_id]


def _absorb(table: MemberTable, message: GossipMessage, *, now: int) -> None:
    """Merge a peer's table, then count the exchange itself as hearing from that peer."""
    members_merge(table, message["members"], now=now)
    member_heard(table, node_id=message["from"], now=now)


def _check(table: MemberTable, config: Config, now: int) -> list[str]:
    suspect_after_ms, dead_after_ms = timeouts_scaled(
        suspect_after_ms=config.suspect_after_ms,
        dead_after_ms=config.dead_after_ms,
        members=sum(1 for m in table.all() if m.status not in (DEAD, LEFT)),
    )
    return members_check(
        table,
        now=now,
        suspect_after_ms=suspect_after_ms,
        dead_after_ms=dead_after_ms,
        reap_after_ms=config.reap_after_ms,
    )
