"""Watch presence: every open watch and subscription on this node, in its Redis, and in the whole
cluster through GET /api/v1/watchers (admin:cluster) — opened, listed, and gone once closed."""

from __future__ import annotations

import pytest

from cluster.membership import MemberState
from cluster.transport import FakeTransport
from kv.tests.realtime import channel_layer, opened, run, socket  # noqa: F401
from kvsite import presence

pytestmark = pytest.mark.django_db
PEERS = [MemberState(f"node{i}", f"http://node{i}.test", i) for i in (2, 3)]
WATCHERS = "/api/v1/watchers"


@pytest.fixture(autouse=True)
def _clean_book(node_redis, settings):
    settings.KVS_NODE_ID = "node1"
    presence.book.clear()
    presence.book._stored_empty = False
    yield
    presence.book.clear()


def test_open_sockets_are_listed_with_their_node_and_filtered_by_prefix():
    first = presence.book.opened(
        {"username": "alice", "kind": "watch", "prefix": "app/", "since": 3}
    )
    presence.book.opened({"username": None, "kind": "pubsub", "topic": "news", "since": None})
    presence.book.write()
    listed = presence.watchers_local(prefix=None)
    assert sorted(w["kind"] for w in listed) == ["pubsub", "watch"]
    assert all(w["node"] == "node1" and w["connected_at"] > 0 for w in listed)
    [app] = presence.watchers_local(prefix="app/")
    assert (app["username"], app["prefix"], app["since"]) == ("alice", "app/", 3)
    assert [w["topic"] for w in presence.watchers_local(prefix="ne")] == ["news"]
    presence.book.closed(first)
    presence.book.write()
    assert [w["kind"] for w in presence.watchers_local(prefix=None)] == ["pubsub"]


def test_the_cluster_list_adds_every_live_peers_and_names_the_silent_ones():
    presence.book.opened({"username": "alice", "kind": "watch", "prefix": "app/", "since": None})
    presence.book.write()
    transport = FakeTransport()
    remote = {"node": "node2", "username": "bob", "kind": "watch", "prefix": "app/x", "since": None}
    other = {"node": "node2", "username": "bob", "kind": "watch", "prefix": "web/", "since": None}
    transport.route(PEERS[0].url, lambda path, payload: {"watchers": [remote, other]})
    view = presence.watchers_cluster(prefix="app/", peers=PEERS, transport=transport, timeout_s=1)
    assert [(w["node"], w["username"]) for w in view["watchers"]] == [
        ("node1", "alice"),
        ("node2", "bob"),
    ]
    assert view["unreachable"] == ["node3"]


def test_a_watch_socket_is_listed_while_open_and_gone_once_closed(channel_layer, make_client):  # noqa: F811
    client = make_client(scopes=["read", "admin:cluster"])
    secret = client.token.secret

    async def scenario():
        ws = socket("/ws/v1/watch?prefix=app/&since=0", token=secret)
        await opened(ws)
        presence.book.write()
        during = presence.watchers_local(prefix=None)
        await ws.disconnect()
        presence.book.write()
        return during, presence.watchers_local(prefix=None)

    during, after = run(scenario)
    [watch] = during
    assert (watch["kind"], watch["prefix"], watch["username"], watch["since"]) == (
        "watch",
        "app/",
        "alice",
        0,
    )
    assert after == []


def test_watchers_needs_admin_cluster_and_a_valid_prefix(make_client, anon):
    presence.book.opened({"username": "alice", "kind": "watch", "prefix": "app/", "since": None})
    presence.book.write()
    assert anon.get(WATCHERS).status_code == 401
    refused = make_client(scopes=["read"]).get(WATCHERS)
    assert refused.status_code == 403 and refused.json()["detail"]
    allowed = make_client(scopes=["admin:cluster"])
    body = allowed.get(WATCHERS, {"prefix": "app/"}).json()
    assert [w["username"] for w in body["watchers"]] == ["alice"]
    assert allowed.get(WATCHERS, {"prefix": "web/"}).json()["watchers"] == []
    bad = allowed.get(WATCHERS, {"prefix": "/x"})
    assert bad.status_code == 400 and bad.json()["detail"]


def test_the_admin_folder_view_says_how_many_watch_and_who(client):
    from accounts.models import User

    for username, prefix in (("alice", "app/"), ("bob", ""), ("carol", "app/db/"), ("dan", "web/")):
        presence.book.opened({"username": username, "kind": "watch", "prefix": prefix})
    presence.book.opened({"username": "erin", "kind": "pubsub", "topic": "app/news"})
    presence.book.write()
    root = User.objects.create_superuser(username="root", password="pw-0123456789")
    client.force_login(root)
    html = client.get("/admin/kv/entry/", {"prefix": "app/"}).content.decode()
    assert 'data-kv-watching="3"' in html and "3 watching: alice, bob, carol" in html
    staff = User.objects.create_user(username="sam", password="pw-0123456789", is_staff=True)
    client.force_login(staff)
    html = client.get("/admin/kv/entry/", {"prefix": "app/"}).content.decode()
    assert ">3 watching</span>" in html and "alice" not in html
