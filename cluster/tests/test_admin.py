import pytest

from accounts.models import User
from cluster.models import Member
from cluster.node import local_node
from kv.hlc import wall_ms

pytestmark = pytest.mark.django_db


def test_the_cluster_page_lists_members_with_status_age_and_root(client, settings):
    settings.KVS_NODE_ID = "node1"
    me = local_node()
    Member.objects.create(
        node_id=me.node_id, url="http://127.0.0.1:1", joined_at=1, last_seen=wall_ms()
    )
    Member.objects.create(node_id="node9", url="http://127.0.0.1:9", joined_at=2, status="dead")
    admin = User.objects.create_superuser(username="admin", password="pw-0123456789")
    client.force_login(admin)
    page = client.get("/admin/cluster/member/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "node1" in html and "node9" in html and "dead" in html
    assert "1 of 1 alive nodes share this node" in html
    assert "s ago" in html


def test_the_cluster_page_is_for_staff_only(client):
    User.objects.create_user(username="plain", password="pw-0123456789")
    client.login(username="plain", password="pw-0123456789")
    assert client.get("/admin/cluster/member/").status_code == 302
