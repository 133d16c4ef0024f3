"""The admin's replica health page and its "repair now" button, for admin:cluster holders only."""

import pytest

from accounts.models import User
from cluster import health
from cluster.models import Member

from .test_antientropy import MemoryPeer, version
from .test_health import add_member

pytestmark = pytest.mark.django_db
PAGE, REPAIR = "/admin/cluster/member/health/", "/admin/cluster/member/health/repair/"


@pytest.fixture
def root_client(client):
    client.force_login(User.objects.create_superuser(username="admin", password="pw-0123456789"))
    return client


def test_the_health_page_shows_every_node_and_whether_the_roots_agree(root_client):
    html = root_client.get(PAGE).content.decode()
    assert 'data-converged="true"' in html and "Replica health" in html
    assert 'id="kv-health-table"' in html
    members = root_client.get("/admin/cluster/member/").content.decode()
    assert f'href="{PAGE}"' in members


def test_repair_now_runs_a_round_and_shows_what_it_found(root_client, monkeypatch):
    add_member("peer", "http://peer")
    peer = MemoryPeer([version("b")])
    monkeypatch.setattr(health, "HttpTransport", lambda **kw: peer)
    html = root_client.get(PAGE).content.decode()
    assert 'data-node="peer"' in html and 'name="peer" value="peer"' in html
    response = root_client.post(REPAIR, {"peer": "peer"}, follow=True)
    html = response.content.decode()
    assert "Anti-entropy with peer" in html and "pulled 1" in html
    assert "Last repair with <code>peer</code>" in html
    assert "keys repaired" in html  # this node's last round, in the table


def test_repair_now_with_an_unknown_peer_says_so(root_client):
    response = root_client.post(REPAIR, {"peer": "nobody"}, follow=True)
    assert "Not repaired: No live peer" in response.content.decode()


def test_staff_without_admin_cluster_may_not_see_or_repair(client):
    staff = User.objects.create_user(username="bob", password="pw-0123456789", is_staff=True)
    client.force_login(staff)
    Member.objects.create(node_id="peer", url="http://peer", joined_at=1)
    assert client.get(PAGE).status_code == 403
    assert client.post(REPAIR, {"peer": "peer"}).status_code == 403
    assert PAGE not in client.get("/admin/cluster/member/").content.decode()
