"""The trail in the admin: filters, the verify button, who may see it; and the events that the
admin's own actions leave (logins, keys, users, groups, tokens, rules)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import User
from audit.models import AuditEvent
from audit.services import event_record
from kv import services
from kv.acl import Caller

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:audit_auditevent_changelist"
VERIFY = "admin:audit_auditevent_verify"


def newest(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


def mode_bits(mode: int) -> list[str]:
    return ["0"] + [str(1 << i) for i in range(12) if mode & (1 << i)]


@pytest.fixture
def root_client(client, root_user):
    client.force_login(root_user)
    return client


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user(username="sam", password="sam-password-1", is_staff=True)


def listed(response) -> list[AuditEvent]:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


# --- who may see it ------------------------------------------------------------------------------


def test_a_superuser_sees_the_trail_with_a_verify_button(root_client):
    event_record("test.event", target="x")
    page = root_client.get(reverse(CHANGELIST))
    assert listed(page) and "Verify the chain" in page.content.decode()


def test_staff_without_the_permission_are_refused_the_trail_and_the_button(client, staff):
    client.force_login(staff)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.post(reverse(VERIFY)).status_code == 403


def test_staff_granted_view_auditevent_see_it_and_may_verify(client, staff):
    staff.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(staff)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200 and "Verify the chain" in page.content.decode()
    assert client.post(reverse(VERIFY)).status_code == 302


def test_the_trail_cannot_be_added_to_changed_or_deleted_here(root_client):
    event = event_record("test.event", target="x")
    change = reverse("admin:audit_auditevent_change", args=[event.seq])
    assert root_client.get(change).status_code == 200  # a read-only page
    assert root_client.post(change, {"target": "y"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.seq])
    assert root_client.post(delete, {"post": "yes"}).status_code == 403
    assert root_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert AuditEvent.objects.get(seq=event.seq).target == "x"


# --- filters and verify --------------------------------------------------------------------------


def test_filters_by_actor_action_key_prefix_and_time(root_client):
    event_record("kv.put", target="app/a", actor="alice")
    event_record("kv.put", target="other/b", actor="bob")
    event_record("kv.delete", target="app/c", actor="alice")
    url = reverse(CHANGELIST)
    by_actor = listed(root_client.get(url, {"actor": "alice"}))
    assert {e.target for e in by_actor} == {"app/a", "app/c"}
    by_action = listed(root_client.get(url, {"action": "kv.put", "actor": "alice"}))
    assert [e.target for e in by_action] == ["app/a"]
    assert {e.target for e in listed(root_client.get(url, {"prefix": "app/"}))} == {
        "app/a", "app/c"
    }  # fmt: skip
    today = listed(root_client.get(url, {"prefix": "app/", "at__gte": "2000-01-01 00:00:00+00:00"}))
    assert len(today) == 2
    assert (
        listed(root_client.get(url, {"prefix": "app/", "at__gte": "2999-01-01 00:00:00+00:00"}))
        == []
    )
    page = root_client.get(url, {"prefix": "app/", "actor": "alice"}).content.decode()
    assert 'name="prefix" value="app/"' in page and 'name="actor"' in page


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_verify_button_says_the_chain_holds_then_where_it_breaks(root_client):
    events = [event_record("test.event", target=str(i)) for i in range(3)]
    holds = root_client.post(reverse(VERIFY), follow=True)
    assert any("The chain holds" in m for m in messages_of(holds))
    AuditEvent.objects.filter(seq=events[1].seq).update(target="forged")
    broken = root_client.post(reverse(VERIFY), follow=True)
    assert any(f"broken at event #{events[1].seq}" in m for m in messages_of(broken))


def test_verify_is_a_post(root_client):
    assert root_client.get(reverse(VERIFY)).status_code == 405


# --- what the admin's actions leave --------------------------------------------------------------


def test_admin_logins_that_succeed_and_fail_are_events(client, root_user):
    login = reverse("admin:login")
    client.post(login, {"username": "root", "password": "wrong"})
    failed = newest("login.failed")
    assert (failed.target, failed.actor, failed.remote) == ("root", None, "127.0.0.1")
    page = client.post(login, {"username": "root", "password": "root-password-1"})
    assert page.status_code == 302
    ok = newest("login")
    assert (ok.actor, ok.detail) == ("root", {"via": "admin"})


def test_admin_key_writes_are_events_of_the_session_user(root_client):
    response = root_client.post(
        reverse("admin:kv_entry_add"), {"key": "adm/k", "value": "1", "ttl": ""}
    )
    assert response.status_code == 302
    event = newest("kv.put")
    assert (event.target, event.actor, event.credential, event.remote) == (
        "adm/k", "root", "session", "127.0.0.1"
    )  # fmt: skip
    entry = services.entry_put(key="adm/gone", value="1", caller=Caller("root", superuser=True))[0]
    delete = reverse("admin:kv_entry_delete", args=[entry.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 302
    assert newest("kv.delete").target == "adm/gone" and newest("kv.delete").actor == "root"


def test_admin_account_and_rule_changes_are_events(root_client, root_user):
    carol = User.objects.create_user(username="carol")
    group = Group.objects.create(name="ops")
    change = reverse("admin:auth_group_change", args=[group.pk])
    root_client.post(change, {"name": "ops", "members": [carol.pk], "permissions": []})
    members = newest("group.members")
    assert (members.target, members.actor, members.credential) == ("ops", "root", "session")
    assert members.detail == {"op": "add", "users": ["carol"]}

    form = {"user": root_user.pk, "scopes": ["read"], "name": "ci", "prefix": "", "expires_in": ""}
    assert root_client.post(reverse("admin:accounts_apitoken_add"), form).status_code in (200, 302)
    assert newest("token.create").actor == "root"

    rule = {"prefix": "team/", "owner": "", "group": "ops", "mode": mode_bits(0o7741)}
    assert root_client.post(reverse("admin:kv_aclrule_add"), rule).status_code == 302
    assert (newest("acl.put").target, newest("acl.put").actor) == ("team/", "root")

    delete = reverse("admin:accounts_user_delete", args=[carol.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 302
    assert (newest("user.delete").target, newest("user.delete").actor) == ("carol", "root")


def test_a_right_password_of_a_user_who_is_not_staff_is_a_failed_admin_login(client):
    User.objects.create_user(username="nina", password="nina-password-1")
    page = client.post(reverse("admin:login"), {"username": "nina", "password": "nina-password-1"})
    assert page.status_code == 200  # the form again, with the error
    failed = newest("login.failed")
    assert failed.target == "nina" and failed.detail["reason"].startswith("admin: ")
    assert newest("login") is None or newest("login").target != "nina"
