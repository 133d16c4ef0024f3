"""A node's life: it leaves (mode `left`, no client writes, no data exchanged either way), and
on its next start it rejoins, syncing first — unless it left longer ago than the tombstone TTL."""

import logging
import uuid

import orjson
import pytest
from celery.signals import worker_ready

from cluster import tasks
from cluster.antientropy import VERSIONS_PATH
from cluster.gossip import GOSSIP_PATH
from cluster.lifecycle import MEMBER, REJOINED, STAYED_LEFT, node_start
from cluster.membership import ALIVE, LEFT, MemberState
from cluster.models import Member
from cluster.node import MODE_LEFT, MODE_NORMAL, MODE_SYNCING, local_node, node_mode
from cluster.selectors import members_alive, members_live
from cluster.signing import sign_request
from cluster.store import DbMemberStore
from cluster.transport import HttpTransport
from kv import services
from kv.hlc import hlc_from_ms, wall_ms
from kv.models import Entry
from kv.versions import Version
from pubsub import subscribers

from .fakes import MemoryCluster

pytestmark = pytest.mark.django_db

SECRET = "lifecycle-secret-0123456789"
DAY_S = 24 * 3600


def add_member(node_id: str, status: str, incarnation: int = 0) -> None:
    state = MemberState(node_id, f"http://{node_id}.test", 1, incarnation, 0, status, 5, 5)
    Member.objects.create(**state.as_dict())


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, str]]:
    """What this node sends to peers over HTTP (nothing is really sent): (url, path)."""
    record: list[tuple[str, str]] = []

    def send(self, url, path, payload, *, to):
        record.append((url, path))
        if path == GOSSIP_PATH:
            return {"from": "peer", "members": []}
        return {}

    monkeypatch.setattr(HttpTransport, "send", send)
    return record


@pytest.fixture
def left(make_client, sent) -> None:
    """This node, with an alive peer, has left through the API."""
    add_member("peer", ALIVE)
    response = make_client(scopes=["admin:cluster"]).post("/api/v1/cluster/leave")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == LEFT
    sent.clear()


# --- a node that left ----------------------------------------------------------------------------


def test_a_node_that_left_says_so_and_refuses_client_writes_with_503(left, api, anon):
    assert anon.get("/health").json()["mode"] == MODE_LEFT
    assert api.get("/api/v1/status").json()["mode"] == MODE_LEFT
    response = api.put("/api/v1/kv/k", data=b"1", content_type="application/json")
    assert response.status_code == 503
    assert response.json()["mode"] == MODE_LEFT and response.json()["code"] == "unavailable"
    assert not Entry.objects.filter(key="k").exists()
    assert api.get("/api/v1/kv/k").status_code == 404  # reads are still served


def test_a_member_that_never_left_takes_client_writes(api, sent):
    add_member("peer", ALIVE)
    assert node_mode() == MODE_NORMAL
    assert api.put("/api/v1/kv/k", data=b"1", content_type="application/json").status_code == 201


def test_a_node_that_left_pushes_syncs_and_forwards_to_nobody(left, sent):
    services.versions_apply([Version.from_wire(version_wire("k"))])
    assert members_alive() == [] and members_live() == []  # the forwarder's and gatherer's peers
    assert tasks.replicate_push_all.apply().get() == 0
    assert tasks.anti_entropy_round.apply().get() is False
    assert tasks.gossip_round.apply().get() == 0
    assert sent == []


def test_a_node_that_left_refuses_data_from_its_peers(left, client, settings):
    settings.KVS_CLUSTER_SECRET = SECRET
    response = signed_post(client, "peer", VERSIONS_PATH, {"versions": [version_wire("x")]})
    assert response.status_code == 403 and response.json()["code"] == "left"
    assert not Entry.objects.filter(key="x").exists()


# --- peers of a node that left or was forgotten --------------------------------------------------


def version_wire(key: str) -> dict:
    return Version(key, uuid.uuid4(), hlc_from_ms(wall_ms()), "n", 1, value="1").as_wire()


def signed_post(client, node_id: str, path: str, payload: dict):
    body = orjson.dumps(payload)
    headers = sign_request(
        SECRET,
        node_id=node_id,
        target=local_node().node_id,
        method="POST",
        path=path,
        body=body,
        now=wall_ms(),
    )
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic("POST", path, body, content_type="application/json", **extra)


@pytest.mark.parametrize(
    ("status", "admitted"),
    [(ALIVE, True), ("suspect", True), ("dead", True), (LEFT, False), (None, False)],
)
def test_data_is_taken_only_from_current_members(client, settings, status, admitted):
    settings.KVS_CLUSTER_SECRET = SECRET
    local_node()
    if status is not None:  # None: never known, or forgotten
        add_member("node3", status)
    response = signed_post(client, "node3", VERSIONS_PATH, {"versions": [version_wire("x")]})
    if admitted:
        assert response.status_code == 200, response.content
        assert Entry.objects.filter(key="x").exists()
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "not_a_member" and "node3" in response.json()["detail"]
        assert not Entry.objects.filter(key="x").exists()


@pytest.mark.parametrize("status", [LEFT, None])
def test_gossip_is_taken_from_anyone_signed_so_that_a_node_can_rejoin(client, settings, status):
    settings.KVS_CLUSTER_SECRET = SECRET
    local_node()
    if status is not None:
        add_member("node3", status, incarnation=1)
    digest = {
        "node_id": "node3", "url": "http://node3.test", "joined_at": 1, "incarnation": 2,
        "heartbeat": 9, "status": ALIVE,
    }  # fmt: skip
    response = signed_post(client, "node3", GOSSIP_PATH, {"from": "node3", "members": [digest]})
    assert response.status_code == 200, response.content
    assert Member.objects.get(node_id="node3").status == ALIVE


# --- starting again ------------------------------------------------------------------------------


def test_a_node_that_left_and_was_forgotten_rejoins_on_restart_syncing_first():
    cluster = MemoryCluster(3)
    for _ in range(3):
        cluster.tick()
    cluster.leave("node3")
    cluster.stop("node3")  # left, then stopped: a node that left never gossips again anyway
    assert cluster.forget("node1", "node3").forgotten_by == ["node1", "node2"]
    for _ in range(10):
        cluster.tick()
    assert cluster.status("node1", "node3") is None and cluster.status("node2", "node3") is None

    report = cluster.restart("node3")

    assert (report.outcome, report.incarnation) == (REJOINED, 2)  # above the `left` one
    assert node_mode() == MODE_SYNCING  # anti-entropy ends it; client writes wait until then
    for _ in range(3):
        cluster.tick()
    for viewer in ("node1", "node2", "node3"):
        assert cluster.view(viewer)["node3"] == ("http://node3.test", ALIVE, 2)
    assert cluster.view("node3")["node1"][1] == ALIVE


def test_a_node_that_left_and_was_not_forgotten_rejoins_on_restart_too():
    cluster = MemoryCluster(2)
    cluster.tick()
    cluster.leave("node2")
    assert cluster.restart("node2").outcome == REJOINED
    cluster.tick()
    assert cluster.view("node1")["node2"] == ("http://node2.test", ALIVE, 2)


def test_a_node_that_left_longer_ago_than_the_tombstone_ttl_stays_left(settings, caplog):
    settings.KVS_TOMBSTONE_TTL = DAY_S
    cluster = MemoryCluster(2)
    cluster.tick()
    cluster.leave("node2")
    cluster.now += (DAY_S + 1) * 1000
    with caplog.at_level(logging.WARNING, logger="cluster.lifecycle"):
        report = cluster.restart("node2")
    assert report.outcome == STAYED_LEFT and report.away_s > DAY_S
    assert "KVS_TOMBSTONE_TTL" in caplog.text and "empty database" in caplog.text
    cluster.tick()
    assert cluster.status("node2", "node2") == cluster.status("node1", "node2") == LEFT
    assert node_mode() == MODE_NORMAL  # the in-memory nodes' rows are not this node's


def test_a_start_of_a_node_that_never_left_changes_nothing():
    cluster = MemoryCluster(2)
    cluster.tick()
    before = cluster.view("node2")
    assert cluster.restart("node2").outcome == MEMBER
    assert cluster.view("node2") == before
    assert node_mode() == MODE_NORMAL


def test_the_worker_starting_makes_a_node_that_left_rejoin(left):
    assert node_mode() == MODE_LEFT
    worker_ready.send(sender=None)
    with DbMemberStore(local_node().node_id).locked() as table:
        assert (table.me.status, table.me.incarnation) == (ALIVE, 2)
    assert node_mode() == MODE_SYNCING
    assert [m.node_id for m in members_alive()] == ["peer"]


def test_a_rejoined_node_leaves_syncing_after_its_first_anti_entropy_round(left, monkeypatch):
    node_start(wall_ms())
    assert node_mode() == MODE_SYNCING
    monkeypatch.setattr(tasks, "merkle_sync", lambda transport, url, peer_id: _equal_report())
    assert tasks.anti_entropy_round.apply().get() is True
    assert node_mode() == MODE_NORMAL


def _equal_report():
    from cluster.antientropy import SyncReport

    return SyncReport(equal=True)


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/cluster/internal/merkle", {"level": 0, "nodes": [0]}),
        ("/cluster/internal/digests", {"buckets": [0], "digests": []}),
        ("/cluster/internal/forget", {"node_id": "node4", "incarnation": 0}),
        ("/cluster/internal/pubsub", {"messages": []}),
        ("/cluster/internal/pubsub/topics", {"prefix": None}),
    ],
)
def test_every_internal_endpoint_but_gossip_answers_members_only(
    client, settings, monkeypatch, path, payload
):
    settings.KVS_CLUSTER_SECRET = SECRET
    monkeypatch.setattr(subscribers, "topics_subscribed", dict)  # no Redis here; none subscribed
    local_node()
    add_member("node4", "dead")
    stranger = signed_post(client, "node3", path, payload)
    assert stranger.status_code == 403 and stranger.json()["code"] == "not_a_member"
    assert Member.objects.filter(node_id="node4").exists()
    add_member("node3", ALIVE)
    member = signed_post(client, "node3", path, payload)
    assert member.status_code == 200, member.content
