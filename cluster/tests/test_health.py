"""Replica health: the last anti-entropy round per peer, the gathered view and its `converged`,
and one round on demand — as services and through the API, from both sides of admin:cluster."""

import pytest

from cluster import health
from cluster.antientropy import merkle_sync
from cluster.membership import MemberState
from cluster.models import AntiEntropyRound, Member
from cluster.node import local_node
from cluster.rounds import antientropy_last, antientropy_rounds
from cluster.transport import FakeTransport, TransportError
from kv import services
from kv.selectors import store_state

from .test_antientropy import MemoryPeer, version

pytestmark = pytest.mark.django_db
HEALTH, REPAIR = "/api/v1/cluster/health", "/api/v1/cluster/repair"
PEERS = [MemberState(f"node{i}", f"http://node{i}.test", i) for i in (2, 3)]


def add_member(node_id: str, url: str, status: str = "alive") -> MemberState:
    state = MemberState(node_id, url, 1, 0, 0, status, 5, 5)
    Member.objects.create(**state.as_dict())
    return state


# --- the last round, recorded by merkle_sync -----------------------------------------------------


def test_every_round_is_recorded_as_the_last_with_its_peer():
    services.versions_apply([version("a"), version("b")])
    peer = MemoryPeer([version("c")])
    report = merkle_sync(peer, "http://peer", peer_id="peer")
    [row] = AntiEntropyRound.objects.all()
    assert row.peer == "peer" and row.ok and not row.equal
    assert row.differing_buckets == len(report.buckets) > 0
    assert (row.pulled, row.pushed) == (1, 2)
    assert row.bytes == report.bytes_sent + report.bytes_received
    merkle_sync(peer, "http://peer", peer_id="peer")
    last = antientropy_last()
    assert last["peer"] == "peer" and last["equal"] and last["keys_repaired"] == 0
    assert list(antientropy_rounds()) == ["peer"]


def test_a_failed_round_is_recorded_too():
    class Down:
        def send(self, url, path, payload, *, to):
            raise TransportError("unreachable")

    with pytest.raises(TransportError):
        merkle_sync(Down(), "http://gone", peer_id="gone")
    assert antientropy_rounds()["gone"]["ok"] is False


# --- the gathered view ---------------------------------------------------------------------------


def _peer_answers(transport: FakeTransport, member: MemberState, root: str) -> None:
    def answer(path: str, payload: dict) -> dict:
        assert path == health.HEALTH_PATH
        return {
            "node_id": member.node_id,
            "merkle_root": root,
            "keys": 1,
            "revision": 7,
            "replication": {},
            "last_antientropy": None,
        }

    transport.route(member.url, answer)


def test_the_view_is_converged_only_when_every_member_answers_with_one_root():
    for member in PEERS:
        add_member(member.node_id, member.url)
    root = store_state().merkle_root
    transport = FakeTransport()
    _peer_answers(transport, PEERS[0], root)
    _peer_answers(transport, PEERS[1], root)
    view = health.cluster_health(peers=PEERS, transport=transport, timeout_s=1)
    assert view["converged"] is True
    assert [n["node_id"] for n in view["nodes"]] == sorted([local_node().node_id, "node2", "node3"])
    _peer_answers(transport, PEERS[1], "f" * 32)
    assert (
        health.cluster_health(peers=PEERS, transport=transport, timeout_s=1)["converged"] is False
    )
    transport.down.add(PEERS[1].url)
    view = health.cluster_health(peers=PEERS, transport=transport, timeout_s=1)
    assert view["converged"] is False and view["unreachable"] == ["node3"]
    [absent] = [n for n in view["nodes"] if n["node_id"] == "node3"]
    assert absent["reachable"] is False and absent["merkle_root"] is None


def test_this_nodes_part_has_the_fields_of_the_contract():
    add_member("node2", "http://node2.test")
    services.entry_put(key="k", value="1")
    mine = health.node_health()
    assert mine["node_id"] == local_node().node_id
    assert mine["keys"] == 1 and mine["revision"] == store_state().revision
    assert mine["replication"] == {
        "node2": {"lag_revisions": 1, "lag_seconds": pytest.approx(0, abs=60)}
    }
    assert mine["last_antientropy"] is None
    health.node_health_parse(mine)
    with pytest.raises(ValueError):
        health.node_health_parse({"node_id": "x", "merkle_root": 1})


# --- the API ------------------------------------------------------------------------------------


def test_health_needs_admin_cluster(make_client, api, anon):
    assert anon.get(HEALTH).status_code == 401
    refused = make_client(scopes=["read", "write"]).get(HEALTH)
    assert refused.status_code == 403 and refused.json()["detail"]
    allowed = make_client(scopes=["admin:cluster"]).get(HEALTH)
    assert allowed.status_code == 200
    body = allowed.json()
    assert body["converged"] is True
    [me] = body["nodes"]
    assert {"node_id", "status", "merkle_root", "keys", "revision", "replication"} <= set(me)
    assert "last_antientropy" in me


def test_repair_runs_one_round_with_the_peer_and_answers_what_it_found(make_client, monkeypatch):
    add_member("peer", "http://peer")
    services.versions_apply([version("a")])
    peer = MemoryPeer([version("b")])
    monkeypatch.setattr(health, "HttpTransport", lambda **kw: peer)
    assert (
        make_client(scopes=["read"]).post(REPAIR, {"peer": "peer"}, format="json").status_code
        == 403
    )
    client = make_client(scopes=["admin:cluster"])
    body = client.post(REPAIR, {"peer": "peer"}, format="json").json()
    assert body["peer"] == "peer" and body["differing_buckets"] >= 1
    assert body["pulled"] == 1 and body["pushed"] >= 1  # "a", and the tokens' records
    assert body["bytes"] > 0 and body["seconds"] >= 0
    assert {"a", "b"} <= set(peer.store)
    again = client.post(REPAIR, {"peer": "peer"}, format="json").json()
    assert again["equal"] is True and again["differing_buckets"] == 0
    assert antientropy_rounds()["peer"]["equal"] is True


def test_repair_with_a_peer_that_fails_is_a_503(make_client, monkeypatch):
    add_member("peer", "http://peer")
    transport = FakeTransport()  # no route: unreachable
    monkeypatch.setattr(health, "HttpTransport", lambda **kw: transport)
    response = make_client(scopes=["admin:cluster"]).post(REPAIR, {"peer": "peer"}, format="json")
    assert response.status_code == 503 and response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"peer": 3}, 400),
        ({"peer": ""}, 400),
        ({"peer": "x", "more": 1}, 400),
        ([], 400),
        ({"peer": "nobody"}, 404),
        ({"peer": "dead"}, 404),
    ],
)
def test_repair_bad_input_is_a_4xx_json_error(make_client, body, status):
    add_member("dead", "http://dead.test", "dead")
    client = make_client(scopes=["admin:cluster"])
    response = client.post(REPAIR, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["detail"]


def test_repair_with_this_node_itself_is_refused(make_client):
    client = make_client(scopes=["admin:cluster"])
    response = client.post(REPAIR, {"peer": local_node().node_id}, format="json")
    assert response.status_code == 400 and response.json()["detail"]
    not_json = client.post(REPAIR, data=b"{", content_type="application/json")
    assert not_json.status_code == 400 and not_json.json()["detail"]
