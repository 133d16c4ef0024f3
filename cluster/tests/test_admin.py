from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from accounts.models import User
from cluster.models import Member
from cluster.node import local_node
from cluster.transport import HttpTransport
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


def forget(client, *node_ids: str):
    ids = [Member.objects.get(node_id=n).pk for n in node_ids]
    return client.post(
        "/admin/cluster/member/",
        {"action": "forget_members", "_selected_action": ids},
        follow=True,
    )


def test_a_superuser_forgets_dead_members_but_not_live_ones(client, settings, monkeypatch):
    settings.KVS_NODE_ID = "node1"
    local_node()
    Member.objects.create(node_id="node8", url="http://127.0.0.1:8", joined_at=2)
    Member.objects.create(node_id="node9", url="http://127.0.0.1:9", joined_at=2, status="dead")
    told = []
    monkeypatch.setattr(
        HttpTransport, "send", lambda self, url, path, payload, to: told.append(payload) or {}
    )
    client.force_login(User.objects.create_superuser(username="admin", password="pw-0123456789"))
    page = forget(client, "node8", "node9")
    html = page.content.decode()
    assert "Forgot node9 on node1, node8." in html
    assert "&#x27;node8&#x27; is alive" in html
    assert set(Member.objects.values_list("node_id", flat=True)) == {"node8"}
    forgets = [payload for payload in told if "node_id" in payload]  # not the Merkle roots
    assert forgets == [{"node_id": "node9", "incarnation": 0}]  # the live peer was told


def test_staff_without_superuser_cannot_forget(client):
    Member.objects.create(node_id="node9", url="http://127.0.0.1:9", joined_at=2, status="dead")
    staff = User.objects.create_user(username="staff", password="pw-0123456789", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(staff)
    assert client.get("/admin/cluster/member/").status_code == 200
    forget(client, "node9")
    assert Member.objects.filter(node_id="node9").exists()


def admin_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_staff_without_django_permissions_see_the_cluster_page_but_cannot_forget(client):
    Member.objects.create(node_id="node9", url="http://127.0.0.1:9", joined_at=2, status="dead")
    staff = User.objects.create_user(username="staff", password="pw-0123456789", is_staff=True)
    client.force_login(staff)
    page = client.get("/admin/cluster/member/")
    assert page.status_code == 200
    assert "forget_members" not in page.content.decode()
    forget(client, "node9")
    assert Member.objects.filter(node_id="node9").exists()


def test_the_member_page_shows_dates_and_ages_not_epoch_milliseconds(client):
    now = wall_ms()
    joined, seen = now - 3 * 3_600_000, now - 5_000
    member = Member.objects.create(
        node_id="node9",
        url="http://127.0.0.1:9",
        joined_at=joined,
        last_seen=seen,
        status_changed_at=seen,
    )
    client.force_login(User.objects.create_superuser(username="admin", password="pw-0123456789"))
    html = client.get(f"/admin/cluster/member/{member.pk}/change/").content.decode()
    for ms in (joined, seen):
        assert str(ms) not in html
    assert admin_time(joined) in html
    assert f"{admin_time(seen)} (5." in html and " s ago)" in html
    listing = client.get("/admin/cluster/member/").content.decode()
    assert admin_time(joined) in listing and str(joined) not in listing
