"""The gossip wire message: what a pushPull may carry."""

import pytest

from cluster.membership import MemberTable, member_self
from cluster.messages import MAX_MEMBERS, InvalidMessage, gossip_message, gossip_message_parse

MEMBER = {
    "node_id": "node2",
    "url": "http://node2.test",
    "joined_at": 2,
    "incarnation": 0,
    "heartbeat": 7,
    "status": "alive",
}


def test_our_table_round_trips_through_the_parser():
    table = MemberTable("node1")
    member_self(table, url="http://node1.test", joined_at=1, now=5)
    message = gossip_message(table)
    assert message == {
        "from": "node1",
        "members": [
            {
                "node_id": "node1",
                "url": "http://node1.test",
                "joined_at": 1,
                "incarnation": 0,
                "heartbeat": 0,
                "status": "alive",
            }
        ],
    }
    assert gossip_message_parse(message) == message


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "zombie"},
        {"incarnation": -1},
        {"heartbeat": True},
        {"heartbeat": 1.5},
        {"joined_at": "2"},
        {"node_id": ""},
        {"node_id": "x" * 65},
        {"node_id": "a\nb"},
        {"url": None},
        {"extra": 1},
    ],
)
def test_a_malformed_member_is_refused(bad):
    with pytest.raises(InvalidMessage):
        gossip_message_parse({"from": "node2", "members": [{**MEMBER, **bad}]})


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"from": "node2"},
        {"from": 3, "members": []},
        {"from": "node2", "members": {}},
        {"from": "node2", "members": [MEMBER] * (MAX_MEMBERS + 1)},
        {"from": "node2", "members": [], "more": 1},
    ],
)
def test_a_malformed_message_is_refused(bad):
    with pytest.raises(InvalidMessage):
        gossip_message_parse(bad)
