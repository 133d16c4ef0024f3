"""Gossip rounds between in-memory nodes over a FakeTransport, on a test clock."""

import random

import pytest

from cluster.config import Config
from cluster.gossip import GOSSIP_PATH, forget_receive, gossip_round, gossip_targets
from cluster.membership import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    MemberTable,
    member_alive,
    member_dead,
    member_self,
    member_suspect,
)
from cluster.models import Member
from cluster.signing import ANY_NODE
from cluster.store import DbMemberStore, MemoryMemberStore
from cluster.transport import FakeTransport
from kvsite.exceptions import Conflict, NotFound

from .fakes import INTERVAL_MS, MemoryCluster

SUSPECT_MS, DEAD_MS = 2_500, 5_000


def converged(cluster: MemoryCluster) -> bool:
    views = [cluster.view(name) for name in cluster.configs if name not in cluster.stopped]
    return all(view == views[0] for view in views)


def rounds_until(cluster: MemoryCluster, condition, *, limit: int) -> int:
    """Tick until `condition()` holds; the number of rounds it took (fail after `limit`)."""
    for rounds in range(1, limit + 1):
        cluster.tick()
        if condition():
            return rounds
    raise AssertionError(f"not reached in {limit} rounds")


# --- join and convergence ------------------------------------------------------------------------


def test_three_nodes_converge_to_the_same_table_in_a_few_rounds():
    cluster = MemoryCluster(3)
    rounds_until(cluster, lambda: converged(cluster) and len(cluster.view("node1")) == 3, limit=4)
    for name in cluster.configs:
        assert {status for _, status, _ in cluster.view(name).values()} == {ALIVE}
    assert cluster.view("node3")["node1"] == ("http://node1.test", ALIVE, 0)


def test_a_node_with_no_members_joins_through_its_seed():
    cluster = MemoryCluster(2)
    report = cluster.round("node2")
    assert report.contacted == ["http://node1.test"] and report.answered == ["node1"]
    assert cluster.status("node2", "node1") == ALIVE
    assert cluster.status("node1", "node2") == ALIVE


def test_requests_are_signed_for_the_member_meant_and_for_any_node_only_to_a_seed():
    cluster = MemoryCluster(3)
    cluster.round("node2")
    assert cluster.transport.targets == [ANY_NODE]  # node2 knows no one yet: node1 is a seed
    rounds_until(cluster, lambda: converged(cluster) and len(cluster.view("node1")) == 3, limit=4)
    sent = len(cluster.transport.targets)
    cluster.tick()
    later = list(zip(cluster.transport.sent[sent:], cluster.transport.targets[sent:], strict=True))
    assert later and all(to == url.split("//")[1].split(".")[0] for (url, _), to in later)


def test_a_member_whose_url_now_leads_to_another_node_is_not_believed():
    cluster = MemoryCluster(2)
    cluster.round("node2")
    cluster.add("node9")
    # node1's address now answers as node9 (a node replaced under the same URL): node2's
    # requests meant for node1 are refused there, so node1 does not look alive through node9.
    cluster.transport.route("http://node1.test", cluster.transport.routes["http://node9.test"])
    cluster.transport.ids["http://node1.test"] = "node9"
    report = cluster.round("node2")
    assert report.contacted == ["http://node1.test"] and report.answered == []
    assert cluster.member("node9", "node2") is None


def test_join_keeps_retrying_the_seed_until_it_answers():
    cluster = MemoryCluster(2)
    cluster.stop("node1")
    for _ in range(3):
        cluster.tick()
        assert cluster.member("node2", "node1") is None
    cluster.resume("node1")
    cluster.tick()
    assert cluster.status("node2", "node1") == ALIVE


def test_a_seed_node_with_no_seeds_just_waits():
    cluster = MemoryCluster(1)
    assert cluster.round("node1").contacted == []
    assert cluster.stores["node1"].table.me.heartbeat == 1


def test_each_round_bumps_our_heartbeat_and_peers_hear_it():
    cluster = MemoryCluster(2)
    for _ in range(3):
        cluster.tick()
    beats = cluster.stores["node2"].table.me.heartbeat
    assert beats == 3
    assert cluster.member("node1", "node2").heartbeat >= beats - 1


# --- failure detection ---------------------------------------------------------------------------


def test_a_node_that_stops_answering_becomes_suspect_then_dead_by_the_deadlines():
    cluster = MemoryCluster(3)
    rounds_until(cluster, lambda: converged(cluster) and len(cluster.view("node1")) == 3, limit=4)
    cluster.stop("node3")
    stopped_at = cluster.now
    suspect_at, dead_at = {}, {}
    while len(dead_at) < 2:
        cluster.tick()
        assert cluster.now - stopped_at <= DEAD_MS + 2 * INTERVAL_MS, "not dead in time"
        for viewer in ("node1", "node2"):
            status = cluster.status(viewer, "node3")
            if status in (SUSPECT, DEAD):
                suspect_at.setdefault(viewer, cluster.now - stopped_at)
            if status == DEAD:
                dead_at.setdefault(viewer, cluster.now - stopped_at)
    # Last news of node3 is at most one round old when it stops.
    assert all(SUSPECT_MS <= t <= SUSPECT_MS + 2 * INTERVAL_MS for t in suspect_at.values())
    assert all(DEAD_MS - INTERVAL_MS <= t <= DEAD_MS + 2 * INTERVAL_MS for t in dead_at.values())
    assert cluster.status("node1", "node2") == cluster.status("node2", "node1") == ALIVE


def test_a_dead_node_that_comes_back_refutes_and_is_alive_again():
    cluster = MemoryCluster(3, probe_dead_chance=0.0)
    rounds_until(cluster, lambda: converged(cluster) and len(cluster.view("node1")) == 3, limit=4)
    cluster.stop("node3")
    rounds_until(cluster, lambda: cluster.status("node1", "node3") == DEAD, limit=8)
    cluster.resume("node3")
    rounds = rounds_until(
        cluster,
        lambda: all(cluster.status(v, "node3") == ALIVE for v in ("node1", "node2", "node3")),
        limit=3,
    )
    assert rounds <= 2
    assert cluster.member("node1", "node3").incarnation >= 1  # the refutation
    # ... and node3, which was frozen, did not accuse the others on waking up.
    assert cluster.status("node3", "node1") == cluster.status("node3", "node2") == ALIVE


def test_a_suspected_node_refutes_and_everyone_accepts_it_alive():
    cluster = MemoryCluster(3)
    rounds_until(cluster, lambda: converged(cluster) and len(cluster.view("node1")) == 3, limit=4)
    with cluster.stores["node1"].locked() as table:  # a false accusation by node1
        member_suspect(table, node_id="node2", incarnation=0, now=cluster.now)
    rounds_until(
        cluster,
        lambda: converged(cluster) and cluster.status("node1", "node2") == ALIVE,
        limit=3,
    )
    assert cluster.member("node3", "node2").incarnation == 1


def test_a_paused_node_does_not_judge_its_peers_by_its_own_absence():
    cluster = MemoryCluster(2)
    cluster.tick()
    cluster.stop("node2")
    cluster.now += 60_000  # node1's process was frozen for a minute: its timers are stale
    cluster.round("node1")
    assert cluster.status("node1", "node2") == ALIVE
    cluster.tick()  # a round later, node1's own silence timer counts again
    assert cluster.status("node1", "node2") == DEAD


# --- leave ---------------------------------------------------------------------------------------


def test_a_node_that_leaves_tells_its_peers_at_once_and_stops_gossiping():
    cluster = MemoryCluster(3)
    rounds_until(cluster, lambda: converged(cluster) and len(cluster.view("node1")) == 3, limit=4)
    me = cluster.leave("node2")
    assert (me.status, me.incarnation) == (LEFT, 1)
    assert cluster.status("node1", "node2") == cluster.status("node3", "node2") == LEFT
    assert cluster.round("node2").skipped
    for _ in range(int(DEAD_MS / INTERVAL_MS) + 2):
        cluster.tick()
    assert cluster.status("node1", "node2") == LEFT  # never suspected, never dead
    assert all(url != "http://node2.test" for url, _ in cluster.transport.sent[-10:])


def test_a_node_that_left_rejoins_from_a_fresh_data_directory_by_refuting():
    cluster = MemoryCluster(2)
    cluster.tick()
    cluster.leave("node2")
    cluster.stores["node2"] = MemoryMemberStore("node2")  # same node id, empty database
    rounds_until(cluster, lambda: cluster.status("node1", "node2") == ALIVE, limit=3)
    assert cluster.member("node1", "node2").incarnation == 2  # above the `left` incarnation


# --- choosing peers ------------------------------------------------------------------------------


def config(**knobs) -> Config:
    return Config(node_id="a", url="http://a", joined_at=1, secret="s", **knobs)


def table_of(statuses: dict[str, str]) -> MemberTable:
    table = MemberTable("a")
    member_self(table, url="http://a", joined_at=1, now=0)
    accuse = {SUSPECT: member_suspect, DEAD: member_dead}
    for node_id, status in statuses.items():
        url = f"http://{node_id}"
        member_alive(
            table, node_id=node_id, url=url, joined_at=2, incarnation=0, heartbeat=0, now=0
        )
        if status != ALIVE:
            accuse[status](table, node_id=node_id, incarnation=0, now=0)
    return table


def test_targets_prefer_alive_peers():
    table = table_of({"b": ALIVE, "c": ALIVE, "d": ALIVE, "s": SUSPECT, "x": DEAD})
    for seed in range(20):
        urls = gossip_targets(table, config(probe_dead_chance=0.0), random.Random(seed))
        assert len(urls) == 2 and set(urls) <= {"http://b", "http://c", "http://d"}


def test_targets_fill_up_with_suspects_and_sometimes_probe_the_dead():
    table = table_of({"b": ALIVE, "s": SUSPECT, "x": DEAD})
    assert gossip_targets(table, config(probe_dead_chance=0.0), random.Random(1)) == {
        "http://b": "b",
        "http://s": "s",
    }
    probed = [
        "http://x" in gossip_targets(table, config(probe_dead_chance=0.25), random.Random(seed))
        for seed in range(400)
    ]
    assert 50 < sum(probed) < 150


def test_targets_are_the_seeds_while_no_peer_is_alive():
    table = table_of({"x": DEAD})
    cfg = config(seeds=("http://seed1", "http://a"), probe_dead_chance=0.0)
    # A seed's id is not known yet: ANY_NODE. Never ourselves.
    assert gossip_targets(table, cfg, random.Random(1)) == {"http://seed1": ANY_NODE}
    assert gossip_targets(table_of({"b": ALIVE}), cfg, random.Random(1)) == {"http://b": "b"}


# --- forgetting a member ------------------------------------------------------------------------


def dead_everywhere(cluster: MemoryCluster, name: str) -> None:
    cluster.stop(name)
    for _ in range(20):
        cluster.tick()
    assert all(cluster.status(v, name) == DEAD for v in cluster.configs if v != name)


def test_a_dead_member_forgotten_on_one_node_is_forgotten_by_the_live_peers_too():
    cluster = MemoryCluster(3)
    for _ in range(5):
        cluster.tick()
    dead_everywhere(cluster, "node3")
    report = cluster.forget("node1", "node3")
    assert (report.forgotten_by, report.unreachable) == (["node1", "node2"], [])
    assert cluster.member("node1", "node3") is None and cluster.member("node2", "node3") is None
    for _ in range(5):
        cluster.tick()  # gossip does not bring it back
    assert cluster.member("node1", "node3") is None and cluster.member("node2", "node3") is None
    cluster.resume("node3")  # a forgotten node that comes back joins again
    for _ in range(10):
        cluster.tick()
    assert cluster.status("node1", "node3") == ALIVE and cluster.status("node2", "node3") == ALIVE


def test_a_peer_that_cannot_be_reached_is_reported_and_keeps_the_member():
    cluster = MemoryCluster(4)
    for _ in range(5):
        cluster.tick()
    dead_everywhere(cluster, "node4")
    cluster.transport.down.add("http://node3.test")  # node3 stays alive to the others for a bit
    report = cluster.forget("node1", "node4")
    assert report.forgotten_by == ["node1", "node2"] and report.unreachable == ["node3"]
    assert cluster.status("node3", "node4") == DEAD


@pytest.mark.parametrize("target", ["node1", "node2", "nobody"])
def test_live_members_ourselves_and_strangers_are_not_forgotten(target):
    cluster = MemoryCluster(2)
    for _ in range(5):
        cluster.tick()
    with pytest.raises((NotFound, Conflict)) as refused:
        cluster.forget("node1", target)
    assert isinstance(refused.value, NotFound) == (target == "nobody")
    assert cluster.status("node1", "node2") == ALIVE and cluster.status("node2", "node1") == ALIVE


def test_a_peer_keeps_a_member_that_came_back_at_a_higher_incarnation():
    t = MemberTable("a")
    member_self(t, url="http://a", joined_at=1, now=0)
    member_alive(t, node_id="b", url="http://b", joined_at=2, incarnation=3, heartbeat=0, now=0)
    assert not forget_receive("b", 2, config=config(), store=_store_with(t))
    member_dead(t, node_id="b", incarnation=3, now=1)
    store = _store_with(t)
    assert not forget_receive("b", 2, config=config(), store=store)
    assert forget_receive("b", 3, config=config(), store=store)
    assert store.table.get("b") is None


def _store_with(table: MemberTable) -> MemoryMemberStore:
    store = MemoryMemberStore(table.self_id)
    store.table = MemberTable(table.self_id, table.all())
    return store


# --- the database store --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_round_on_the_database_store_saves_the_merged_table():
    peer = MemoryCluster(1)
    transport = FakeTransport({"http://node1.test": peer.transport.routes["http://node1.test"]})
    cfg = Config(
        node_id="me", url="http://me", joined_at=5, secret="s", seeds=("http://node1.test",)
    )
    report = gossip_round(transport, peer.now, config=cfg, store=DbMemberStore("me"))
    assert report.answered == ["node1"]
    rows = {row.node_id: row for row in Member.objects.all()}
    assert set(rows) == {"me", "node1"}
    assert (rows["me"].heartbeat, rows["me"].status, rows["me"].url) == (1, ALIVE, "http://me")
    assert rows["node1"].last_seen == peer.now
    assert peer.status("node1", "me") == ALIVE
    gossip_round(transport, peer.now + 1000, config=cfg, store=DbMemberStore("me"))
    assert Member.objects.get(node_id="me").heartbeat == 2
    assert transport.sent[-1] == ("http://node1.test", GOSSIP_PATH)


@pytest.mark.django_db
def test_a_round_forgets_members_dead_for_the_reap_time_in_the_database():
    cfg = Config(
        node_id="me", url="http://me", joined_at=5, secret="s", dead_after_ms=5_000,
        reap_after_ms=60_000,
    )  # fmt: skip
    now = 10_000_000
    with DbMemberStore("me").locked() as table:
        member_self(table, url="http://me", joined_at=5, now=now)
        member_alive(
            table, node_id="gone", url="http://gone", joined_at=1, incarnation=0, heartbeat=0,
            now=now,
        )  # fmt: skip
    transport = FakeTransport({})

    clock = [now]

    def rounds(until: int):  # one a second, as beat runs them
        while clock[0] < until:
            clock[0] += 1_000
            report = gossip_round(transport, clock[0], config=cfg, store=DbMemberStore("me"))
        return report

    rounds(now + 5_000)
    dead = Member.objects.get(node_id="gone")
    assert dead.status == DEAD and dead.status_changed_at == now + 5_000
    rounds(now + 5_000 + 59_000)
    assert Member.objects.filter(node_id="gone").exists()
    assert rounds(now + 5_000 + 60_000).changed == ["gone"]
    assert list(Member.objects.values_list("node_id", flat=True)) == ["me"]


def test_the_memory_store_keeps_nothing_from_a_failed_block():
    store = MemoryMemberStore("a")
    with pytest.raises(RuntimeError), store.locked() as table:
        member_self(table, url="http://a", joined_at=1, now=0)
        raise RuntimeError
    assert store.table.get("a") is None


def test_in_a_cluster_of_a_hundred_a_stopped_node_is_suspected_after_the_scaled_timeout():
    """At 100 live members the silence timeouts are twice the configured ones (log10 100)."""
    cluster = MemoryCluster(100)
    rounds_until(cluster, lambda: len(cluster.view("node1")) == 100, limit=20)
    rounds_until(cluster, lambda: cluster.status("node1", "node50") == ALIVE, limit=20)
    cluster.stop("node50")
    stopped_at = cluster.now
    rounds_until(cluster, lambda: cluster.status("node1", "node50") in (SUSPECT, DEAD), limit=30)
    assert cluster.now - stopped_at >= 2 * SUSPECT_MS
