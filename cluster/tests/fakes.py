"""In-memory nodes that gossip through a FakeTransport, driven by a test-controlled clock."""

from __future__ import annotations

import random
from functools import partial

from cluster.config import Config
from cluster.gossip import (
    FORGET_PATH,
    GOSSIP_PATH,
    ForgetReport,
    RoundReport,
    forget_receive,
    gossip_forget,
    gossip_leave,
    gossip_receive,
    gossip_round,
)
from cluster.lifecycle import StartReport, node_start
from cluster.membership import MemberState
from cluster.messages import gossip_message_parse
from cluster.store import MemoryMemberStore
from cluster.transport import FakeTransport

START_MS = 1_700_000_000_000
INTERVAL_MS = 1_000


class MemoryCluster:
    """Nodes `node1`..`nodeN` in memory; node1 is every other node's seed."""

    def __init__(self, count: int, *, seed: int = 7, **knobs) -> None:
        self.now = START_MS
        self.rng = random.Random(seed)
        self.transport = FakeTransport()
        self.configs: dict[str, Config] = {}
        self.stores: dict[str, MemoryMemberStore] = {}
        self.stopped: set[str] = set()
        for index in range(1, count + 1):
            self.add(f"node{index}", **knobs)

    def add(self, name: str, **knobs) -> None:
        """Start one more node, seeded with node1."""
        url = f"http://{name}.test"
        seeds = () if name == "node1" else ("http://node1.test",)
        joined_at = self.now + len(self.configs)
        config = Config(
            node_id=name, url=url, joined_at=joined_at, secret="s", seeds=seeds, **knobs
        )
        self.configs[name] = config
        self.stores[name] = MemoryMemberStore(name)
        self.transport.route(url, partial(self._receive, name), node_id=name)

    def _receive(self, name: str, path: str, payload: dict) -> dict:
        config, store = self.configs[name], self.stores[name]
        if path == FORGET_PATH:
            forgotten = forget_receive(
                payload["node_id"], payload["incarnation"], config=config, store=store
            )
            return {"forgotten": forgotten}
        assert path == GOSSIP_PATH
        message = gossip_message_parse(payload)
        return gossip_receive(message, self.now, config=self.configs[name], store=self.stores[name])

    def round(self, name: str) -> RoundReport:
        """One gossip round of `name` at the current time."""
        config, store = self.configs[name], self.stores[name]
        return gossip_round(self.transport, self.now, config=config, store=store, rng=self.rng)

    def tick(self, ms: int = INTERVAL_MS) -> None:
        """Move the clock by `ms`, then run a round on every running node."""
        self.now += ms
        for name in self.configs:
            if name not in self.stopped:
                self.round(name)

    def stop(self, name: str) -> None:
        """`name` stops answering and stops gossiping, as if killed."""
        self.stopped.add(name)
        self.transport.down.add(self.configs[name].url)

    def resume(self, name: str) -> None:
        self.stopped.discard(name)
        self.transport.down.discard(self.configs[name].url)

    def leave(self, name: str) -> MemberState:
        config, store = self.configs[name], self.stores[name]
        return gossip_leave(self.transport, self.now, config=config, store=store)

    def restart(self, name: str) -> StartReport:
        """`name` starts again with the member table it had (what a node's worker does on
        start; it needs the database, for the node's `syncing` flag)."""
        self.resume(name)
        return node_start(self.now, config=self.configs[name], store=self.stores[name])

    def forget(self, name: str, node_id: str) -> ForgetReport:
        config, store = self.configs[name], self.stores[name]
        return gossip_forget(self.transport, node_id, config=config, store=store)

    def member(self, viewer: str, name: str) -> MemberState | None:
        """`name` as `viewer` sees it."""
        return self.stores[viewer].table.get(name)

    def status(self, viewer: str, name: str) -> str | None:
        member = self.member(viewer, name)
        return None if member is None else member.status

    def view(self, viewer: str) -> dict[str, tuple[str, str, int]]:
        """`viewer`'s table without the fields that move every round: id -> (url, status, inc)."""
        table = self.stores[viewer].table
        return {m.node_id: (m.url, m.status, m.incarnation) for m in table.all()}
