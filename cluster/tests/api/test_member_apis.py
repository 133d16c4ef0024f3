"""GET /api/v1/cluster/members, the member counts in /api/v1/status, forgetting a member,
POST /api/v1/cluster/leave."""

import pytest

from cluster.membership import MemberState
from cluster.models import Member
from cluster.node import local_node
from cluster.store import DbMemberStore
from cluster.transport import HttpTransport, TransportError

pytestmark = pytest.mark.django_db

FIELDS = {"node_id", "url", "status", "joined_at", "last_seen", "incarnation"}


def add_member(node_id: str, status: str, incarnation: int = 0) -> None:
    state = MemberState(node_id, f"http://{node_id}.test", 1, incarnation, 0, status, 5, 5)
    Member.objects.create(**state.as_dict())


def test_members_lists_this_node_before_any_gossip(api, settings):
    settings.KVS_ADVERTISE_URL = "http://me.test:8000/"
    response = api.get("/api/v1/cluster/members")
    assert response.status_code == 200
    [me] = response.json()
    assert set(me) == FIELDS
    assert (me["node_id"], me["url"], me["status"]) == (
        local_node().node_id,
        "http://me.test:8000",
        "alive",
    )
    assert me["joined_at"] == local_node().joined_at


def test_members_lists_every_known_member_with_its_status(api):
    add_member("node-b", "suspect", 2)
    add_member("node-c", "dead")
    add_member("node-d", "left", 1)
    body = api.get("/api/v1/cluster/members").json()
    by_id = {m["node_id"]: m for m in body}
    assert len(body) == 4
    assert (by_id["node-b"]["status"], by_id["node-b"]["incarnation"]) == ("suspect", 2)
    assert by_id["node-c"]["url"] == "http://node-c.test" and by_id["node-c"]["last_seen"] == 5


def test_members_needs_the_read_scope(anon, make_client):
    assert anon.get("/api/v1/cluster/members").status_code == 401
    assert make_client(scopes=["write"]).get("/api/v1/cluster/members").status_code == 403
    assert make_client(scopes=["read"]).get("/api/v1/cluster/members").status_code == 200


def test_status_counts_members_by_status_with_this_node_alive(api):
    assert api.get("/api/v1/status").json()["members"] == {
        "alive": 1,
        "suspect": 0,
        "dead": 0,
        "left": 0,
    }
    for node_id, status in [("b", "alive"), ("c", "suspect"), ("d", "dead"), ("e", "dead")]:
        add_member(node_id, status)
    assert api.get("/api/v1/status").json()["members"] == {
        "alive": 2,
        "suspect": 1,
        "dead": 2,
        "left": 0,
    }


def test_leave_needs_the_admin_cluster_scope(anon, make_client):
    assert anon.post("/api/v1/cluster/leave").status_code == 401
    assert make_client(scopes=["read", "write"]).post("/api/v1/cluster/leave").status_code == 403
    assert not Member.objects.filter(status="left").exists()


def test_leave_marks_this_node_left_and_tells_the_live_peers(make_client, monkeypatch):
    add_member("peer-alive", "alive")
    add_member("peer-dead", "dead")
    sent = []
    monkeypatch.setattr(
        HttpTransport, "send", lambda self, url, path, payload, to: sent.append(url)
    )
    response = make_client(scopes=["admin:cluster"]).post("/api/v1/cluster/leave")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == FIELDS
    assert (body["node_id"], body["status"], body["incarnation"]) == (
        local_node().node_id,
        "left",
        1,
    )
    assert sent == ["http://peer-alive.test"]
    status = make_client(scopes=["read"]).get("/api/v1/status").json()
    assert status["members"]["left"] == 1 and status["members"]["alive"] == 1
    with DbMemberStore(local_node().node_id).locked() as table:
        assert table.me.status == "left"


# --- DELETE /api/v1/cluster/members/{node_id} -----------------------------------------------------


def test_forgetting_needs_the_admin_cluster_scope(anon, make_client):
    add_member("peer-dead", "dead")
    assert anon.delete("/api/v1/cluster/members/peer-dead").status_code == 401
    reader = make_client(scopes=["read", "write", "delete"])
    assert reader.delete("/api/v1/cluster/members/peer-dead").status_code == 403
    assert Member.objects.filter(node_id="peer-dead").exists()


def test_forgetting_a_dead_member_removes_it_here_and_tells_the_live_peers(
    make_client, monkeypatch
):
    add_member("peer-alive", "alive")
    add_member("peer-down", "suspect")
    add_member("peer-dead", "dead", incarnation=4)
    sent = []

    def send(self, url, path, payload, *, to):
        sent.append((url, to, path, payload))
        if url == "http://peer-down.test":
            raise TransportError("unreachable")
        return {"forgotten": True}

    monkeypatch.setattr(HttpTransport, "send", send)
    response = make_client(scopes=["admin:cluster"]).delete("/api/v1/cluster/members/peer-dead")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "node_id": "peer-dead",
        "forgotten_by": [local_node().node_id, "peer-alive"],
        "unreachable": ["peer-down"],
    }
    payload = {"node_id": "peer-dead", "incarnation": 4}
    assert sorted(sent) == [
        ("http://peer-alive.test", "peer-alive", "/cluster/internal/forget", payload),
        ("http://peer-down.test", "peer-down", "/cluster/internal/forget", payload),
    ]
    assert not Member.objects.filter(node_id="peer-dead").exists()
    listed = make_client(scopes=["read"]).get("/api/v1/cluster/members").json()
    assert "peer-dead" not in {m["node_id"] for m in listed}


def test_a_member_that_left_can_be_forgotten(make_client, monkeypatch):
    add_member("peer-left", "left", incarnation=1)
    monkeypatch.setattr(HttpTransport, "send", lambda *a, **kw: {"forgotten": True})
    response = make_client(scopes=["admin:cluster"]).delete("/api/v1/cluster/members/peer-left")
    assert response.status_code == 200
    assert not Member.objects.filter(node_id="peer-left").exists()


@pytest.mark.parametrize("status", ["alive", "suspect"])
def test_live_members_and_this_node_are_not_forgotten(make_client, status):
    add_member("peer", status)
    admin = make_client(scopes=["admin:cluster"])
    response = admin.delete("/api/v1/cluster/members/peer")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict" and status in response.json()["detail"]
    me = local_node().node_id
    assert admin.delete(f"/api/v1/cluster/members/{me}").status_code == 409
    assert Member.objects.filter(node_id="peer", status=status).exists()


def test_forgetting_an_unknown_member_is_404(make_client):
    response = make_client(scopes=["admin:cluster"]).delete("/api/v1/cluster/members/nobody")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
