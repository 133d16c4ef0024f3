"""Membership at scale, simulated: the production gossip, merge and silence-timer code of
`cluster/` (gossip_round, gossip_receive, members_merge, members_check, the wire message and its
validation) run by N in-memory nodes over a lossy in-memory transport on a simulated clock.

    .venv/bin/python bench/membership_sim.py                  # 100, 500 and 1,000 members
    .venv/bin/python bench/membership_sim.py --sizes 50 200 --loss 0.05 --json out.json

Nothing of the protocol is re-implemented here. What is simulated: the clock (each node runs a
round once per KVS_GOSSIP_INTERVAL at its own phase within the interval, in phase order, so news
can travel several hops in one interval as between real nodes), the network (a FakeTransport
that delivers each request and each answer through JSON, drops each with probability `loss`, and
counts their bytes) and the member table's storage (MemoryMemberStore instead of the database
rows; the same MemberTable is loaded and saved).

Each size runs three phases:
 1. bootstrap: every node starts at once with node1 as its seed; time until every table lists
    every member alive;
 2. join and death, no loss: a new node joins through a random seed while a random member is
    killed (stops answering and gossiping); time until every live member lists the new node
    alive, and until every live member lists the killed one dead (first suspicion too);
 3. loss: every message (request or answer) is dropped with probability `loss` for
    `--loss-rounds` intervals; false positives = (viewer, member) pairs where a live member was
    marked suspect or dead.
Bytes per round per member are the JSON bytes a member sends and receives in one interval in
steady state (phase 2, averaged), and what zstd (the production body_encode, for messages of
KVS_COMPRESS_MIN_BYTES or more) makes of a full-table message of that size.
Exit status: 0 ok, 1 a phase did not converge within its limit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402

from cluster.compression import body_encode  # noqa: E402
from cluster.config import Config  # noqa: E402
from cluster.gossip import GOSSIP_PATH, gossip_receive, gossip_round  # noqa: E402
from cluster.membership import ALIVE, DEAD, SUSPECT  # noqa: E402
from cluster.messages import gossip_message, gossip_message_parse  # noqa: E402
from cluster.store import MemoryMemberStore  # noqa: E402
from cluster.transport import FakeTransport, TransportError  # noqa: E402

START_MS = 1_700_000_000_000
INTERVAL_MS = 1_000


class LossyTransport(FakeTransport):
    """The in-memory transport, dropping each request and each answer with probability `loss`
    and counting the JSON bytes each node sends and receives."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.loss = 0.0
        self.bytes_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}
        self.dropped = 0

    def send(self, member_url: str, path: str, payload: dict, *, to: str) -> dict:
        sender, receiver = payload["from"], self.ids.get(member_url, member_url)
        request = len(orjson.dumps(payload))
        self._count(sender, receiver, request)
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            raise TransportError(f"{member_url}: request lost")
        answer = super().send(member_url, path, payload, to=to)
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            raise TransportError(f"{member_url}: answer lost")
        self._count(receiver, sender, len(orjson.dumps(answer)))
        return answer

    def _count(self, sender: str, receiver: str, size: int) -> None:
        self.bytes_out[sender] = self.bytes_out.get(sender, 0) + size
        self.bytes_in[receiver] = self.bytes_in.get(receiver, 0) + size

    def reset_counts(self) -> None:
        self.bytes_in.clear()
        self.bytes_out.clear()


class SimCluster:
    """N nodes with their own phase in the gossip interval; node1 seeds everyone at bootstrap."""

    def __init__(self, count: int, *, seed: int = 1, **knobs) -> None:
        self.rng = random.Random(seed)
        self.transport = LossyTransport(random.Random(seed + 1))
        self.knobs = knobs
        self.now = START_MS
        self.configs: dict[str, Config] = {}
        self.stores: dict[str, MemoryMemberStore] = {}
        self.phase: dict[str, int] = {}
        self.stopped: set[str] = set()
        for index in range(1, count + 1):
            self.add(f"node{index}", seed_url=None if index == 1 else "http://node1.sim")

    def add(self, name: str, *, seed_url: str | None) -> None:
        url = f"http://{name}.sim"
        self.configs[name] = Config(
            node_id=name,
            url=url,
            joined_at=START_MS + len(self.configs),
            secret="sim",
            seeds=() if seed_url is None else (seed_url,),
            **self.knobs,
        )
        self.stores[name] = MemoryMemberStore(name)
        self.phase[name] = self.rng.randrange(INTERVAL_MS)
        self.transport.route(url, self._receiver(name), node_id=name)

    def _receiver(self, name: str):
        def receive(path: str, payload: dict) -> dict:
            assert path == GOSSIP_PATH
            message = gossip_message_parse(payload)
            return gossip_receive(
                message, self.clock, config=self.configs[name], store=self.stores[name]
            )

        return receive

    def live(self) -> list[str]:
        return [name for name in self.configs if name not in self.stopped]

    def interval(self) -> None:
        """One gossip interval: every running node runs one round at its phase, in phase order."""
        base = self.now
        for name in sorted(self.live(), key=lambda n: self.phase[n]):
            self.clock = base + self.phase[name]
            gossip_round(
                self.transport,
                self.clock,
                config=self.configs[name],
                store=self.stores[name],
                rng=self.rng,
            )
        self.now = base + INTERVAL_MS
        self.clock = self.now

    def stop(self, name: str) -> None:
        """`name` is killed: it stops answering and gossiping."""
        self.stopped.add(name)
        self.transport.down.add(self.configs[name].url)

    def status(self, viewer: str, name: str) -> str | None:
        member = self.stores[viewer].table.get(name)
        return None if member is None else member.status

    def all_see(self, name: str, statuses: tuple[str, ...]) -> bool:
        """Whether every live member (other than `name`) lists `name` in one of `statuses`
        (None: not listed, which counts for DEAD once a member was forgotten)."""
        return all(
            self.status(viewer, name) in statuses for viewer in self.live() if viewer != name
        )

    def converged(self) -> bool:
        """Every live member lists every live member alive."""
        live = self.live()
        return all(
            self.stores[viewer].table.get(name) is not None
            and self.stores[viewer].table.get(name).status == ALIVE
            for viewer in live
            for name in live
        )

    def accusations(self) -> set[tuple[str, str, int]]:
        """(viewer, member, incarnation) for every live member some live member holds suspect
        or dead."""
        live = set(self.live())
        found = set()
        for viewer in live:
            for member in self.stores[viewer].table.all():
                if member.node_id in live and member.status in (SUSPECT, DEAD):
                    found.add((viewer, member.node_id, member.incarnation))
        return found


@dataclass
class SizeResult:
    members: int
    bootstrap_s: float
    join_s: float
    suspect_s: float
    dead_s: float
    false_suspect_no_loss: int
    false_dead_no_loss: int
    false_suspect: int
    false_dead: int
    loss_rounds: int
    dropped: int
    json_bytes_per_member_round: int
    zstd_bytes_per_member_round: int
    message_bytes: int
    cpu_s: float
    notes: list[str] = field(default_factory=list)


def run_size(
    members: int,
    *,
    loss: float = 0.01,
    loss_rounds: int = 10,
    seed: int = 1,
    limit: int = 60,
    **knobs,
) -> SizeResult:
    """The three phases at `members` members (the joiner makes it members + 1 in phases 2-3);
    `knobs` are Config fields (suspect_after_ms, dead_after_ms, fanout)."""
    started = time.process_time()
    sim = SimCluster(members, seed=seed, **knobs)
    t0 = sim.now
    for _ in range(limit):
        sim.interval()
        if sim.converged():
            break
    else:
        raise SystemExit(f"{members}: bootstrap did not converge in {limit} intervals")
    bootstrap_s = (sim.now - t0) / 1000

    # Phase 2: a join and a death at once, no loss.
    names = list(sim.configs)
    victim = sim.rng.choice(names[1:])
    joiner = f"node{members + 1}"
    sim.add(joiner, seed_url=sim.configs[sim.rng.choice(names)].url)
    sim.stop(victim)
    sim.transport.reset_counts()
    t0, join_s, suspect_s, dead_s, steady = sim.now, None, None, None, 0
    clean_suspect: set[tuple[str, str, int]] = set()
    clean_dead: set[tuple[str, str, int]] = set()
    for _ in range(limit):
        sim.interval()
        steady += 1
        _note_accusations(sim, clean_suspect, clean_dead)
        elapsed = (sim.now - t0) / 1000
        if join_s is None and sim.all_see(joiner, (ALIVE,)):
            join_s = elapsed
        if suspect_s is None and sim.all_see(victim, (SUSPECT, DEAD, None)):
            suspect_s = elapsed
        if dead_s is None and sim.all_see(victim, (DEAD, None)):
            dead_s = elapsed
        if join_s is not None and dead_s is not None:
            break
    else:
        raise SystemExit(f"{members}: join or detection not complete in {limit} intervals")
    live = sim.live()
    traffic = sum(
        sim.transport.bytes_out.get(n, 0) + sim.transport.bytes_in.get(n, 0) for n in live
    )
    json_per_member = traffic // (len(live) * steady)
    message = orjson.dumps(gossip_message(sim.stores["node1"].table))
    wire, _ = body_encode(message)
    zstd_per_member = round(json_per_member * len(wire) / len(message))

    # Phase 3: loss.
    sim.transport.loss = loss
    sim.transport.dropped = 0
    seen_suspect: set[tuple[str, str, int]] = set()
    seen_dead: set[tuple[str, str, int]] = set()
    for _ in range(loss_rounds):
        sim.interval()
        _note_accusations(sim, seen_suspect, seen_dead)
    return SizeResult(
        members=members,
        bootstrap_s=bootstrap_s,
        join_s=join_s,
        suspect_s=suspect_s,
        dead_s=dead_s,
        false_suspect_no_loss=len(clean_suspect | clean_dead),
        false_dead_no_loss=len(clean_dead),
        false_suspect=len(seen_suspect | seen_dead),
        false_dead=len(seen_dead),
        loss_rounds=loss_rounds,
        dropped=sim.transport.dropped,
        json_bytes_per_member_round=json_per_member,
        zstd_bytes_per_member_round=zstd_per_member,
        message_bytes=len(message),
        cpu_s=round(time.process_time() - started, 1),
    )


def _note_accusations(sim: SimCluster, suspect: set, dead: set) -> None:
    """Add the current false accusations (a live member held suspect or dead) to the sets."""
    for viewer, name, incarnation in sim.accusations():
        status = sim.status(viewer, name)
        (dead if status == DEAD else suspect).add((viewer, name, incarnation))


def table(results: list[SizeResult], *, loss: float) -> str:
    head = (
        "| members | bootstrap s | join → all s | death → all suspect s | death → all dead s "
        f"| false suspect / dead, no loss | false suspect / dead, {loss:.0%} loss "
        "| JSON B/member/round | zstd B/member/round | full-table message B | sim CPU s |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in results:
        lines.append(
            f"| {r.members} | {r.bootstrap_s:.0f} | {r.join_s:.0f} | {r.suspect_s:.0f} "
            f"| {r.dead_s:.0f} | {r.false_suspect_no_loss} / {r.false_dead_no_loss} "
            f"| {r.false_suspect} / {r.false_dead} "
            f"({r.loss_rounds} rounds, {r.dropped} dropped) | {r.json_bytes_per_member_round:,} "
            f"| {r.zstd_bytes_per_member_round:,} | {r.message_bytes:,} | {r.cpu_s} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--loss-rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--suspect-after", type=float, default=2.5, help="seconds")
    parser.add_argument("--dead-after", type=float, default=5.0, help="seconds")
    parser.add_argument("--fanout", type=int, default=2)
    args = parser.parse_args()
    knobs = {
        "suspect_after_ms": round(args.suspect_after * 1000),
        "dead_after_ms": round(args.dead_after * 1000),
        "fanout": args.fanout,
    }
    results = []
    for size in args.sizes:
        result = run_size(
            size, loss=args.loss, loss_rounds=args.loss_rounds, seed=args.seed, **knobs
        )
        results.append(result)
        print(f"{size} members done: {asdict(result)}", file=sys.stderr, flush=True)
    print(
        f"load: {os.getloadavg()[0]:.2f} (1 min); interval 1 s, fanout {args.fanout}, "
        f"suspect after {args.suspect_after} s, dead after {args.dead_after} s "
        "(times log10 of the live members beyond 10)"
    )
    print(table(results, loss=args.loss))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
