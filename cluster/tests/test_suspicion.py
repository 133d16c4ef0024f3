"""The silence timer: suspect after KVS_SUSPECT_AFTER, dead after KVS_DEAD_AFTER."""

from cluster.membership import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    MemberTable,
    member_alive,
    member_heard,
    member_leave,
    member_self,
    members_merge,
)
from cluster.suspicion import members_check

T0 = 1_000_000
SUSPECT_MS, DEAD_MS = 2_500, 5_000


def table() -> MemberTable:
    t = MemberTable("a")
    member_self(t, url="http://a", joined_at=1, now=T0)
    member_alive(t, node_id="b", url="http://b", joined_at=2, incarnation=0, heartbeat=0, now=T0)
    return t


def check(t: MemberTable, now: int) -> list[str]:
    return members_check(t, now=now, suspect_after_ms=SUSPECT_MS, dead_after_ms=DEAD_MS)


def test_a_silent_member_becomes_suspect_then_dead_by_the_deadlines():
    t = table()
    assert check(t, T0 + SUSPECT_MS - 1) == [] and t.get("b").status == ALIVE
    assert check(t, T0 + SUSPECT_MS) == ["b"] and t.get("b").status == SUSPECT
    assert check(t, T0 + DEAD_MS - 1) == [] and t.get("b").status == SUSPECT
    assert check(t, T0 + DEAD_MS) == ["b"] and t.get("b").status == DEAD
    assert t.get("b").status_changed_at == T0 + DEAD_MS
    assert check(t, T0 + 10 * DEAD_MS) == []  # dead stays dead, without more changes


def test_a_member_silent_past_both_deadlines_at_once_is_dead():
    t = table()
    assert check(t, T0 + DEAD_MS) == ["b"] and t.get("b").status == DEAD


def test_a_member_heard_from_stays_alive():
    t = table()
    for now in range(T0 + 1_000, T0 + 20_000, 1_000):
        member_heard(t, node_id="b", now=now)
        assert check(t, now) == []
    assert t.get("b").status == ALIVE


def test_a_suspect_member_heard_from_again_is_not_declared_dead():
    t = table()
    check(t, T0 + SUSPECT_MS)
    member_heard(t, node_id="b", heartbeat=5, now=T0 + 3_000)
    assert check(t, T0 + DEAD_MS) == [] and t.get("b").status == SUSPECT


def test_we_never_suspect_ourselves():
    t = table()
    check(t, T0 + 10 * DEAD_MS)
    assert t.me.status == ALIVE


def test_a_member_that_left_is_never_suspected():
    t = MemberTable("b")
    member_self(t, url="http://b", joined_at=2, now=T0)
    member_leave(t, now=T0)
    peer = table()
    members_merge(peer, t.digests(), now=T0)
    assert check(peer, T0 + 10 * DEAD_MS) == [] and peer.get("b").status == LEFT


REAP_MS = 60_000


def test_a_member_dead_for_the_reap_time_is_forgotten():
    t = table()
    check(t, T0 + DEAD_MS)
    reap = members_check
    kw = {"suspect_after_ms": SUSPECT_MS, "dead_after_ms": DEAD_MS, "reap_after_ms": REAP_MS}
    assert reap(t, now=T0 + DEAD_MS + REAP_MS - 1, **kw) == [] and t.get("b").status == DEAD
    assert reap(t, now=T0 + DEAD_MS + REAP_MS, **kw) == ["b"]
    assert t.get("b") is None and t.removed == {"b"}
    assert [m.node_id for m in t.all()] == ["a"]


def test_without_a_reap_time_the_dead_stay():
    t = table()
    check(t, T0 + DEAD_MS)
    assert check(t, T0 + 1_000 * REAP_MS) == [] and t.get("b").status == DEAD


def test_a_member_that_left_is_forgotten_too_but_never_ourselves():
    t = MemberTable("b")
    member_self(t, url="http://b", joined_at=2, now=T0)
    member_leave(t, now=T0)
    peer = table()
    members_merge(peer, t.digests(), now=T0)
    kw = {"suspect_after_ms": SUSPECT_MS, "dead_after_ms": DEAD_MS, "reap_after_ms": REAP_MS}
    assert members_check(peer, now=T0 + REAP_MS, **kw) == ["b"] and peer.get("b") is None
    assert members_check(t, now=T0 + 10 * REAP_MS, **kw) == [] and t.me.status == LEFT


def test_news_of_a_forgotten_member_as_dead_is_ignored_and_its_return_adds_it_again():
    t = table()
    check(t, T0 + DEAD_MS)
    stale = t.get("b").digest()  # a peer still gossiping it as dead
    kw = {"suspect_after_ms": SUSPECT_MS, "dead_after_ms": DEAD_MS, "reap_after_ms": REAP_MS}
    members_check(t, now=T0 + DEAD_MS + REAP_MS, **kw)
    members_merge(t, [stale], now=T0 + DEAD_MS + REAP_MS + 1)
    assert t.get("b") is None
    back = {**stale, "status": ALIVE, "incarnation": stale["incarnation"] + 1, "heartbeat": 9}
    members_merge(t, [back], now=T0 + 2 * REAP_MS)
    assert t.get("b").status == ALIVE and "b" not in t.removed and "b" in t.changed


def test_the_timeouts_are_the_configured_ones_up_to_ten_members_and_grow_with_log_n_beyond():
    from cluster.suspicion import timeouts_scaled

    def scaled(n):
        return timeouts_scaled(suspect_after_ms=SUSPECT_MS, dead_after_ms=DEAD_MS, members=n)

    assert scaled(0) == scaled(1) == scaled(3) == scaled(10) == (SUSPECT_MS, DEAD_MS)
    assert scaled(100) == (2 * SUSPECT_MS, 2 * DEAD_MS)
    assert scaled(1000) == (3 * SUSPECT_MS, 3 * DEAD_MS)
    assert scaled(20) < scaled(100) < scaled(500) < scaled(1000)
