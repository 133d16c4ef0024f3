"""Forwarding: each published message goes once to every alive peer, a dead peer delays no other."""

from __future__ import annotations

import threading

import pytest

from cluster.membership import MemberState
from cluster.transport import FakeTransport, TransportError
from pubsub.forwarding import PUBSUB_PATH, Forwarder
from tests.integration.helpers import wait_for

PEERS = [MemberState("node2", "http://node2.test", 1), MemberState("node3", "http://node3.test", 2)]


@pytest.fixture
def received():
    """What each peer URL received, and a FakeTransport that delivers there."""
    got: dict[str, list[str]] = {p.url: [] for p in PEERS}
    transport = FakeTransport()
    for peer in PEERS:

        def handler(path, payload, url=peer.url):
            assert path == PUBSUB_PATH
            got[url] += [m["id"] for m in payload["messages"]]
            return {"delivered": len(payload["messages"]), "duplicates": 0}

        transport.route(peer.url, handler)
    return got, transport


def test_every_message_reaches_every_alive_peer_once(received):
    got, transport = received
    forwarder = Forwarder(peers=lambda: PEERS, transport=lambda: transport)
    for i in range(50):
        forwarder.forward({"id": str(i)})
    # A peer's outbox posts in order, so a late copy of any message would arrive before the last.
    forwarder.forward({"id": "last"})
    wait_for(lambda: all(ids[-1:] == ["last"] for ids in got.values()), timeout=5, what="forwards")
    expected = [str(i) for i in range(50)] + ["last"]
    assert all(ids == expected for ids in got.values()), got


def test_a_peer_that_hangs_does_not_delay_the_others(received):
    got, transport = received
    release = threading.Event()
    slow_url = PEERS[0].url
    fast = transport.routes[PEERS[1].url]
    transport.route(slow_url, lambda path, payload: release.wait(10) and {})
    transport.route(PEERS[1].url, fast)
    forwarder = Forwarder(peers=lambda: PEERS, transport=lambda: transport)
    forwarder.forward({"id": "a"})
    forwarder.forward({"id": "b"})
    try:
        wait_for(lambda: got[PEERS[1].url] == ["a", "b"], timeout=5, what="the healthy peer")
    finally:
        release.set()


def test_a_failed_forward_is_tried_once_more_then_dropped(received):
    got, transport = received
    attempts: list[list[str]] = []

    def unreachable(path, payload):
        attempts.append([m["id"] for m in payload["messages"]])
        raise TransportError("unreachable")

    transport.route(PEERS[0].url, unreachable)
    forwarder = Forwarder(peers=lambda: PEERS, transport=lambda: transport)
    forwarder.forward({"id": "x"})
    wait_for(lambda: len(attempts) >= 2, timeout=5, what="two attempts at the dead peer")
    # The outbox posts in order: a third attempt at "x" would come before the attempts at "y".
    forwarder.forward({"id": "y"})
    wait_for(lambda: len(attempts) >= 4, timeout=5, what="two attempts at the second message")
    assert attempts == [["x"], ["x"], ["y"], ["y"]]
    wait_for(lambda: got[PEERS[1].url] == ["x", "y"], timeout=5, what="the healthy peer")


def test_messages_published_within_the_gather_time_go_to_a_peer_in_one_post(settings):
    settings.KVS_PUBSUB_FORWARD_GATHER = 0.5
    posts: list[list[str]] = []
    transport = FakeTransport()
    transport.route(
        PEERS[0].url,
        lambda path, payload: posts.append([m["id"] for m in payload["messages"]]) or {},
    )
    forwarder = Forwarder(peers=lambda: PEERS[:1], transport=lambda: transport)
    for i in range(20):
        forwarder.forward({"id": str(i)})
    wait_for(lambda: posts, timeout=5, what="the first post")
    assert posts == [[str(i) for i in range(20)]]


def test_each_post_is_signed_for_the_peer_it_goes_to():
    transport = FakeTransport()
    got: dict[str, list[str]] = {p.node_id: [] for p in PEERS}
    for peer in PEERS:

        def handler(path, payload, node_id=peer.node_id):
            got[node_id] += [m["id"] for m in payload["messages"]]
            return {}

        transport.route(peer.url, handler, node_id=peer.node_id)
    forwarder = Forwarder(peers=lambda: PEERS, transport=lambda: transport)
    forwarder.forward({"id": "m"})
    wait_for(lambda: all(got.values()), timeout=5, what="both peers")
    assert sorted(transport.targets) == ["node2", "node3"]
    # A peer that is now another node at the same URL refuses what was meant for the old one.
    transport.ids[PEERS[0].url] = "node7"
    forwarder.forward({"id": "n"})
    wait_for(lambda: got["node3"] == ["m", "n"], timeout=5, what="the unchanged peer")
    assert got["node2"] == ["m"]


def test_a_message_that_cannot_be_sent_is_dropped_and_the_rest_of_its_batch_goes(
    received, settings
):
    # Publishes are refused beyond KVS_MAX_JSON_DEPTH at the door; this is the net behind it.
    settings.KVS_PUBSUB_FORWARD_GATHER = 0.2  # all of them in one batch
    got, transport = received
    deep: object = 1
    for _ in range(300):  # beyond orjson's encoder and beyond what a peer parses
        deep = [deep]
    forwarder = Forwarder(peers=lambda: PEERS, transport=lambda: transport)
    forwarder.forward({"id": "before", "data": 1})
    forwarder.forward({"id": "deep", "data": deep})
    forwarder.forward({"id": "big", "data": 2**70})  # the standard library's encoder: still sent
    forwarder.forward({"id": "after", "data": 2})
    wanted = ["before", "big", "after"]
    wait_for(lambda: all(ids == wanted for ids in got.values()), timeout=5, what="the others")


def test_a_message_as_deep_as_a_publish_may_be_is_forwarded(received, settings):
    got, transport = received
    data: object = 1
    for _ in range(settings.KVS_MAX_JSON_DEPTH - 1):  # the body {"data": ...} is one level more
        data = [data]
    forwarder = Forwarder(peers=lambda: PEERS, transport=lambda: transport)
    forwarder.forward({"id": "deep", "data": data})
    wait_for(lambda: all(ids == ["deep"] for ids in got.values()), timeout=5, what="forwards")
