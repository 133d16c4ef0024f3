"""The member state machine: alive/suspect/dead/left by incarnation, refutation, merge rules."""

import itertools

import pytest

from cluster.membership import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    MemberDigest,
    MemberTable,
    member_alive,
    member_dead,
    member_heard,
    member_leave,
    member_left,
    member_refute,
    member_self,
    member_suspect,
    members_merge,
)

NOW = 1_000_000


def table_with_b(*, incarnation: int = 3, status: str = ALIVE) -> MemberTable:
    """Node a's table, knowing node b at `incarnation` with `status`."""
    table = MemberTable("a")
    member_self(table, url="http://a", joined_at=1, now=NOW)
    member_alive(
        table,
        node_id="b",
        url="http://b",
        joined_at=2,
        incarnation=incarnation,
        heartbeat=10,
        now=NOW,
    )
    if status != ALIVE:
        {SUSPECT: member_suspect, DEAD: member_dead, LEFT: member_left}[status](
            table, node_id="b", incarnation=incarnation, now=NOW
        )
    return table


def digest(node_id="b", *, incarnation=3, status=ALIVE, heartbeat=10) -> MemberDigest:
    return MemberDigest(
        node_id=node_id,
        url=f"http://{node_id}",
        joined_at=2,
        incarnation=incarnation,
        heartbeat=heartbeat,
        status=status,
    )


def b(table: MemberTable) -> tuple[str, int]:
    member = table.get("b")
    return member.status, member.incarnation


# --- guards --------------------------------------------------------------------------------------


def test_an_unknown_member_heard_alive_joins_the_table():
    table = MemberTable("a")
    member_alive(table, node_id="b", url="http://b", joined_at=2, incarnation=0, heartbeat=1, now=5)
    member = table.get("b")
    assert (member.status, member.url, member.last_seen, member.status_changed_at) == (
        ALIVE,
        "http://b",
        5,
        5,
    )


@pytest.mark.parametrize("accuse", [member_suspect, member_dead, member_left])
def test_accusations_about_an_unknown_member_are_ignored(accuse):
    table = MemberTable("a")
    accuse(table, node_id="ghost", incarnation=9, now=NOW)
    assert table.get("ghost") is None and not table.changed


@pytest.mark.parametrize("accuse", [member_suspect, member_dead, member_left])
def test_accusations_at_an_older_incarnation_are_ignored(accuse):
    table = table_with_b(incarnation=3)
    accuse(table, node_id="b", incarnation=2, now=NOW + 1)
    assert b(table) == (ALIVE, 3)


def test_alive_at_an_older_incarnation_does_not_undo_an_accusation():
    table = table_with_b(incarnation=3, status=DEAD)
    member_alive(
        table, node_id="b", url="http://b", joined_at=2, incarnation=2, heartbeat=99, now=1
    )
    assert b(table) == (DEAD, 3)


# --- accusations and refutation ------------------------------------------------------------------


def test_suspect_then_dead_at_the_same_incarnation():
    table = table_with_b()
    member_suspect(table, node_id="b", incarnation=3, now=NOW + 10)
    assert b(table) == (SUSPECT, 3)
    assert table.get("b").status_changed_at == NOW + 10
    member_dead(table, node_id="b", incarnation=3, now=NOW + 20)
    assert b(table) == (DEAD, 3)


def test_suspect_does_not_soften_dead_at_the_same_incarnation():
    table = table_with_b(status=DEAD)
    member_suspect(table, node_id="b", incarnation=3, now=NOW + 1)
    assert b(table) == (DEAD, 3)


def test_alive_at_the_same_incarnation_does_not_clear_suspicion():
    table = table_with_b(status=SUSPECT)
    member_alive(
        table, node_id="b", url="http://b", joined_at=2, incarnation=3, heartbeat=50, now=1
    )
    assert b(table) == (SUSPECT, 3)


@pytest.mark.parametrize("status", [SUSPECT, DEAD, LEFT])
def test_alive_at_a_higher_incarnation_wins_over_any_status(status):
    table = table_with_b(status=status)
    member_alive(
        table, node_id="b", url="http://b2", joined_at=2, incarnation=4, heartbeat=11, now=NOW + 5
    )
    member = table.get("b")
    assert (member.status, member.incarnation, member.url) == (ALIVE, 4, "http://b2")
    assert member.last_seen == NOW + 5 and member.status_changed_at == NOW + 5


@pytest.mark.parametrize("accuse", [member_suspect, member_dead])
def test_an_accusation_of_ourselves_is_refuted_with_a_higher_incarnation(accuse):
    table = table_with_b()
    me = table.me
    accuse(table, node_id="a", incarnation=me.incarnation, now=NOW + 1)
    assert (table.me.status, table.me.incarnation) == (ALIVE, me.incarnation + 1)


def test_an_accusation_at_a_higher_incarnation_than_ours_is_refuted_above_it():
    # e.g. our database was restored from an old backup: beat the incarnation peers remember.
    table = table_with_b()
    member_suspect(table, node_id="a", incarnation=7, now=NOW + 1)
    assert (table.me.status, table.me.incarnation) == (ALIVE, 8)


def test_an_accusation_we_already_refuted_is_ignored():
    table = table_with_b()
    member_refute(table, incarnation=0, now=NOW)
    assert table.me.incarnation == 1
    member_suspect(table, node_id="a", incarnation=0, now=NOW + 1)
    assert (table.me.status, table.me.incarnation) == (ALIVE, 1)


def test_refutation_is_accepted_by_the_accuser():
    accused = MemberTable("b")
    member_self(accused, url="http://b", joined_at=2, now=NOW)
    accuser = MemberTable("a")
    member_self(accuser, url="http://a", joined_at=1, now=NOW)
    members_merge(accuser, accused.digests(), now=NOW)
    member_suspect(accuser, node_id="b", incarnation=0, now=NOW + 1)

    members_merge(accused, accuser.digests(), now=NOW + 2)  # b hears it is suspected
    assert (accused.me.status, accused.me.incarnation) == (ALIVE, 1)
    members_merge(accuser, accused.digests(), now=NOW + 3)
    assert b(accuser) == (ALIVE, 1)


# --- leave ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("news", [member_suspect, member_dead])
def test_left_is_final_for_its_incarnation(news):
    table = table_with_b(status=LEFT)
    news(table, node_id="b", incarnation=3, now=NOW + 1)
    member_alive(
        table, node_id="b", url="http://b", joined_at=2, incarnation=3, heartbeat=99, now=1
    )
    assert b(table) == (LEFT, 3)


def test_leaving_raises_our_incarnation_so_it_beats_accusations_of_the_old_one():
    table = table_with_b()
    me = member_leave(table, now=NOW + 1)
    assert (me.status, me.incarnation) == (LEFT, 1)
    peer = table_with_b()
    member_alive(peer, node_id="x", url="http://x", joined_at=3, incarnation=0, heartbeat=0, now=0)
    members_merge(peer, [digest("x", incarnation=0, status=DEAD)], now=NOW)
    members_merge(peer, [digest("x", incarnation=1, status=LEFT)], now=NOW)
    assert peer.get("x").status == LEFT


def test_a_node_that_left_does_not_refute():
    table = table_with_b()
    member_leave(table, now=NOW)
    member_dead(table, node_id="a", incarnation=5, now=NOW + 1)
    assert (table.me.status, table.me.incarnation) == (LEFT, 1)


# --- heartbeats and merge ------------------------------------------------------------------------


def test_a_fresher_heartbeat_resets_the_silence_timer_but_not_the_status():
    table = table_with_b(status=SUSPECT)
    members_merge(table, [digest(status=ALIVE, heartbeat=11)], now=NOW + 500)
    member = table.get("b")
    assert (member.status, member.heartbeat, member.last_seen) == (SUSPECT, 11, NOW + 500)


def test_a_stale_heartbeat_is_no_news():
    table = table_with_b()
    members_merge(table, [digest(heartbeat=9)], now=NOW + 500)
    assert table.get("b").last_seen == NOW and not (table.changed - {"a", "b"})


def test_direct_contact_resets_the_silence_timer():
    table = table_with_b()
    member_heard(table, node_id="b", now=NOW + 700)
    assert table.get("b").last_seen == NOW + 700


def test_our_heartbeat_catches_up_with_what_peers_last_saw():
    # e.g. our database was restored from a backup: peers would take lower heartbeats as no news.
    table = table_with_b()
    members_merge(table, [digest("a", incarnation=0, heartbeat=500)], now=NOW + 1)
    assert (table.me.heartbeat, table.me.last_seen, table.me.incarnation) == (500, NOW, 0)


@pytest.mark.parametrize(
    ("incarnation", "status", "expected"),
    [
        (4, ALIVE, (ALIVE, 4)),  # higher incarnation wins
        (4, SUSPECT, (SUSPECT, 4)),
        (2, DEAD, (SUSPECT, 3)),  # older: ignored
        (3, ALIVE, (SUSPECT, 3)),  # equal: graver wins
        (3, DEAD, (DEAD, 3)),
        (3, LEFT, (LEFT, 3)),
    ],
)
def test_merge_rules(incarnation, status, expected):
    table = table_with_b(status=SUSPECT)
    members_merge(table, [digest(incarnation=incarnation, status=status)], now=NOW + 1)
    assert b(table) == expected


def test_merging_is_order_independent_and_idempotent():
    news = [
        digest(incarnation=3, status=ALIVE),
        digest(incarnation=3, status=SUSPECT),
        digest(incarnation=3, status=DEAD),
        digest(incarnation=4, status=ALIVE),
        digest(incarnation=4, status=SUSPECT),
        digest(incarnation=2, status=LEFT),
    ]
    outcomes = set()
    for order in itertools.permutations(news):
        table = table_with_b()
        members_merge(table, order, now=NOW)
        members_merge(table, order, now=NOW)
        outcomes.add(b(table))
    assert outcomes == {(SUSPECT, 4)}


def test_a_new_url_is_announced_with_a_new_incarnation():
    table = table_with_b()
    me = member_self(table, url="http://a-moved", joined_at=1, now=NOW)
    assert (me.url, me.incarnation) == ("http://a-moved", 1)
