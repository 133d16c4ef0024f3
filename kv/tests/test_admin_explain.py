"""The admin's "who can do what" panel on an entry's page, and the keys a rule's page lists."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.models import User
from kv import services
from kv.models import AclRule, Entry
from kv.policy import acl_rule_put

pytestmark = pytest.mark.django_db


def _entry(key: str, *, owner="olivia", mode=0xF00) -> Entry:
    services.entry_put(key=key, value='"v"')
    services.entry_meta_set(key=key, owner=owner, mode=mode, fields={"owner", "mode"})
    return Entry.objects.get(key=key)


def _panel(response) -> dict:
    assert response.status_code == 200, response.status_code
    panel = response.context["kv_explain"]
    return {d["name"]: d["allowed"] for d in panel["decisions"]} | {"_chosen": panel["chosen"]}


def test_an_acl_admin_picks_any_user_and_sees_the_four_answers(client, root_user):
    User.objects.create(username="olivia")
    User.objects.create(username="otto")
    entry = _entry("app/k", mode=0xF01)  # owner cdwr, others r
    client.force_login(root_user)
    page = reverse("admin:kv_entry_change", args=[entry.pk])
    assert _panel(client.get(page))["_chosen"] == "root"
    otto = _panel(client.get(page, {"explain": "otto"}))
    assert otto == {
        "create": True,
        "delete": False,
        "write": False,
        "read": True,
        "_chosen": "otto",
    }
    html = client.get(page, {"explain": "otto"}).content.decode()
    assert "Who can do what" in html and 'form="kv-explain-form"' in html
    assert "does not grant others the &#x27;w&#x27; (write) bit" in html
    olivia = _panel(client.get(page, {"explain": "olivia"}))
    assert olivia["write"] and olivia["delete"]


def test_other_staff_see_only_their_own_answers(client):
    staff = User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)
    User.objects.create(username="olivia")
    entry = _entry("app/k", mode=0xF01)
    client.force_login(staff)
    page = reverse("admin:kv_entry_change", args=[entry.pk])
    response = client.get(page, {"explain": "olivia"})  # not an ACL admin: the choice is ignored
    assert _panel(response)["_chosen"] == "bob"
    assert _panel(response)["read"] and not _panel(response)["write"]
    assert response.context["kv_explain"]["users"] is None


def test_a_rule_page_lists_the_keys_it_governs_and_not_those_of_a_longer_rule(client, root_user):
    User.objects.create(username="olivia")
    for key in ("app/a", "app/b", "app/db/host", "other/x"):
        _entry(key)
    acl_rule_put(prefix="app/", owner=None, group=None, mode=0xF00)
    acl_rule_put(prefix="app/db/", owner=None, group=None, mode=0xF00)
    client.force_login(root_user)
    rule = AclRule.objects.get(prefix="app/")
    html = client.get(reverse("admin:kv_aclrule_change", args=[rule.pk])).content.decode()
    assert "Keys this rule governs" in html
    assert ">app/a</a>" in html and ">app/b</a>" in html
    assert "app/db/host" not in html and "other/x" not in html
    inner = AclRule.objects.get(prefix="app/db/")
    html = client.get(reverse("admin:kv_aclrule_change", args=[inner.pk])).content.decode()
    assert ">app/db/host</a>" in html and ">app/a</a>" not in html


def test_a_rule_page_shows_only_keys_the_viewer_may_read(client):
    team = Group.objects.create(name="acl")
    staff = User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)
    staff.groups.add(team)
    staff.user_permissions.add(*Permission.objects.filter(codename__endswith="aclrule"))
    User.objects.create(username="olivia")
    _entry("app/secret", mode=0xF00)
    _entry("app/open", mode=0xF01)
    acl_rule_put(prefix="app/", owner=None, group=None, mode=0xF00)
    client.force_login(staff)
    rule = AclRule.objects.get(prefix="app/")
    html = client.get(reverse("admin:kv_aclrule_change", args=[rule.pk])).content.decode()
    assert ">app/open</a>" in html and "app/secret" not in html
