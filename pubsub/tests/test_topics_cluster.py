"""The cluster's topic counts: this node's, plus every live peer's answer within the timeout; the
peers that gave none are named unreachable."""

from __future__ import annotations

import threading
import time

import pytest

from cluster.membership import MemberState
from cluster.transport import FakeTransport
from pubsub.subscribers import (
    TOPICS_PATH,
    SubscriberBook,
    topics_cluster,
    topics_under,
)

PEERS = [MemberState(f"node{i}", f"http://node{i}.test", i) for i in (2, 3)]
TIMEOUT_S = 0.5


@pytest.fixture
def local(node_redis) -> SubscriberBook:
    """This node's subscriptions: two on `a`, one on `team/x`."""
    book = SubscriberBook()
    book._counts.update({"a": 2, "team/x": 1})
    book.write()
    return book


def peer(transport: FakeTransport, member: MemberState, counts: dict[str, int], asked: list):
    """`member` answers with `counts` under the prefix it is asked for, as a node does."""

    def answer(path: str, payload: dict) -> dict:
        assert path == TOPICS_PATH
        asked.append((member.node_id, payload))
        return {"topics": topics_under(counts, payload["prefix"])}

    transport.route(member.url, answer)


def test_every_live_peers_subscribers_are_added_to_this_nodes(local):
    transport, asked = FakeTransport(), []
    peer(transport, PEERS[0], {"a": 1, "b": 4}, asked)
    peer(transport, PEERS[1], {"team/x": 2}, asked)
    view = topics_cluster(prefix=None, peers=PEERS, transport=transport, timeout_s=TIMEOUT_S)
    assert view.topics == [("a", 3), ("b", 4), ("team/x", 3)]
    assert view.unreachable == []
    assert sorted(asked) == [("node2", {"prefix": None}), ("node3", {"prefix": None})]


def test_only_topics_under_the_callers_prefix_are_asked_for_and_counted(local):
    transport, asked = FakeTransport(), []
    peer(transport, PEERS[0], {"team/x": 5, "team/y": 1}, asked)
    # A peer that ignores the prefix (older code) still has only the prefix's topics counted.
    transport.route(PEERS[1].url, lambda path, payload: {"topics": {"b": 9, "team/x": 1}})
    view = topics_cluster(prefix="team/", peers=PEERS, transport=transport, timeout_s=TIMEOUT_S)
    assert view.topics == [("team/x", 7), ("team/y", 1)]
    assert asked == [("node2", {"prefix": "team/"})]


@pytest.mark.parametrize("failure", ["down", "hangs", "malformed", "negative"])
def test_a_peer_that_does_not_answer_usably_in_time_is_named_and_not_waited_for(local, failure):
    transport, asked, release = FakeTransport(), [], threading.Event()
    peer(transport, PEERS[0], {"a": 1}, asked)
    slow = PEERS[1].url
    if failure == "down":
        transport.route(slow, lambda path, payload: {})
        transport.down.add(slow)
    elif failure == "hangs":
        transport.route(slow, lambda path, payload: release.wait(10) and {"topics": {"a": 1}})
    elif failure == "malformed":
        transport.route(slow, lambda path, payload: {"topics": ["a"]})
    else:
        transport.route(slow, lambda path, payload: {"topics": {"a": -5}})
    started = time.monotonic()
    try:
        view = topics_cluster(prefix=None, peers=PEERS, transport=transport, timeout_s=TIMEOUT_S)
    finally:
        release.set()
    assert time.monotonic() - started < TIMEOUT_S + 0.5
    assert view.topics == [("a", 3), ("team/x", 1)]
    assert view.unreachable == ["node3"]


def test_with_no_live_peer_the_count_is_this_nodes_and_nobody_is_asked(local):
    transport = FakeTransport()
    view = topics_cluster(prefix=None, peers=[], transport=transport)
    assert view.topics == [("a", 2), ("team/x", 1)] and view.unreachable == []
    assert transport.sent == []
