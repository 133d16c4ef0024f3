"""The admin of entries, ACL rules and schemas: it browses live keys by folder, and its writes go
through kv.services with the same validation, versions and ACL checks as the API."""

import json
import time

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.models import User
from kv import services
from kv.acl import Caller, caller_may, mode_parse
from kv.admin.access import readable_by
from kv.forms import json_pretty
from kv.models import AclRule, Entry, PrefixSchema
from kv.policy import acl_rule_put, schema_put
from kv.selectors import store_state

from .api.helpers import expire, url

pytestmark = pytest.mark.django_db

ROOT = Caller(username="root", superuser=True)
CHANGELIST = "admin:kv_entry_changelist"


# --- helpers -------------------------------------------------------------------------------------


def put(key: str, value="1", *, caller: Caller = ROOT, **kw) -> Entry:
    return services.entry_put(key=key, value=value, caller=caller, **kw)[0]


def mode_bits(mode: int | str) -> list[str]:
    """The grid's submitted values for a mode: the hidden 0 and one bit per ticked box."""
    mode = mode_parse(mode)
    return ["0"] + [str(1 << i) for i in range(12) if mode & (1 << i)]


def change_url(entry: Entry) -> str:
    return reverse("admin:kv_entry_change", args=[entry.pk])


def change_data(entry: Entry, **changes) -> dict:
    """What the change form posts when nothing is edited, with `changes` applied."""
    data = {
        "value": json_pretty(entry.value),
        "ttl": "",
        "owner": entry.owner or "",
        "group": entry.group or "",
        "mode": mode_bits(entry.mode),
        "expected_version": str(entry.version),
    }
    data.update(changes)
    return data


def listed(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [entry.key for entry in response.context["cl"].result_list]


def form_errors(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    return response.context["adminform"].form.errors


def fresh(entry: Entry) -> Entry:
    return Entry.objects.get(pk=entry.pk)


@pytest.fixture
def root_client(client, root_user):
    client.force_login(root_user)
    return client


@pytest.fixture
def staff(db) -> User:
    """A staff user who is no superuser, allowed by Django to use the entry admin."""
    user = User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)
    codenames = ["view_entry", "add_entry", "change_entry", "delete_entry"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


# --- the list: folders, breadcrumb, search, live keys only ---------------------------------------


@pytest.fixture
def tree():
    for key in ("app/a", "app/b", "app/db/host", "app/db/port", "other/x", "top"):
        put(key)
    put("app/gone")
    services.entry_delete(key="app/gone")
    put("app/old", ttl=60)
    expire("app/old")


def test_changelist_lists_the_live_keys_of_a_folder_and_its_subfolders(root_client, tree):
    response = root_client.get(reverse(CHANGELIST), {"prefix": "app/"})
    assert listed(response) == ["app/a", "app/b"]  # no tombstone, nothing expired
    assert [f["name"] for f in response.context["kv_folders"]] == ["db/"]
    html = response.content.decode()
    assert 'href="/admin/kv/entry/?prefix=app%2Fdb%2F"' in html  # drill down
    assert 'href="/admin/kv/entry/?prefix=app%2F" aria-current="page">app</a>' in html  # crumb
    assert "Add entry in app/" in html


def test_changelist_root_shows_top_level_keys_and_folders(root_client, tree):
    response = root_client.get(reverse(CHANGELIST))
    assert listed(response) == ["top"]
    assert [f["name"] for f in response.context["kv_folders"]] == ["app/", "other/"]


def test_the_clusters_reserved_records_stay_out_of_the_admin(root_client, tree):
    services.system_record_put(key="_sys/test/record", value='"v"')
    response = root_client.get(reverse(CHANGELIST), {"flat": "1"})
    assert not [key for key in listed(response) if key.startswith("_")]
    assert "_sys/" not in [f["name"] for f in response.context["kv_folders"]]


def test_changelist_flat_view_shows_every_key_below_the_folder(root_client, tree):
    response = root_client.get(reverse(CHANGELIST), {"prefix": "app/", "flat": "1"})
    assert listed(response) == ["app/a", "app/b", "app/db/host", "app/db/port"]


def test_search_finds_key_substrings_below_the_current_folder(root_client, tree):
    assert listed(root_client.get(reverse(CHANGELIST), {"q": "db/p"})) == ["app/db/port"]
    assert listed(root_client.get(reverse(CHANGELIST), {"q": "x"})) == ["other/x"]
    assert listed(root_client.get(reverse(CHANGELIST), {"q": "x", "prefix": "app/"})) == []


def test_changelist_shows_value_preview_mode_string_and_expiry(root_client):
    put("cfg", json.dumps({"name": "x" * 100}, separators=(",", ":")), ttl=3600)
    html = root_client.get(reverse(CHANGELIST)).content.decode()
    assert "cdwr--wr---r" in html
    assert "{&quot;name&quot;:&quot;xxxxx" in html and "x" * 100 not in html  # a short preview
    assert "Expires (UTC)" in html


def test_staff_see_only_keys_they_may_read(staff_client):
    put("public/doc")  # default mode: others may read
    put("private/doc")
    services.entry_meta_set(key="private/doc", mode=mode_parse("cdwr--------"), fields={"mode"})
    assert listed(staff_client.get(reverse(CHANGELIST), {"flat": "1"})) == ["public/doc"]
    assert [f["name"] for f in staff_client.get(reverse(CHANGELIST)).context["kv_folders"]] == [
        "public/"
    ]
    private = Entry.objects.get(key="private/doc")
    assert staff_client.get(change_url(private)).status_code == 302  # "does not exist"


def test_readable_by_agrees_with_the_acl_for_every_class():
    Group.objects.bulk_create([Group(name="g"), Group(name="h")])
    User.objects.bulk_create([User(username="bob"), User(username="carol")])
    keys = []
    for i, (owner, group, mode) in enumerate(
        (o, g, m)
        for o in (None, "bob", "carol")
        for g in (None, "g", "h")
        for m in ("cdwr--------", "---r--------", "-------r----", "-----------r", "---r---r---r")
    ):
        key = f"k{i}"
        put(key)
        services.entry_meta_set(key=key, owner=owner, group=group, mode=mode_parse(mode),
                                fields={"owner", "group", "mode"})  # fmt: skip
        keys.append(key)
    for caller in (
        Caller(username="bob", groups=frozenset({"g"})),
        Caller(username="dave"),
        Caller(username=None),
        Caller(username="carol", groups=frozenset({"g", "h"})),
    ):
        expected = {
            e.key
            for e in Entry.objects.filter(key__in=keys)
            if caller_may(caller, "r", owner=e.owner, group=e.group, mode=e.mode)
        }
        got = Entry.objects.filter(readable_by(caller), key__in=keys)
        got = set(got.values_list("key", flat=True))
        assert got == expected, caller


# --- adding --------------------------------------------------------------------------------------


def test_adding_a_key_creates_a_version_the_api_serves(root_client, api):
    response = root_client.post(
        reverse("admin:kv_entry_add"),
        {"key": "app/new", "value": '{\n  "a": [1, 2],\n  "b": null\n}', "ttl": ""},
    )
    entry = Entry.objects.get(key="app/new")
    assert response.status_code == 302
    assert response["Location"] == change_url(entry)  # on to owner, group and mode
    got = api.get(url("app/new"))
    assert got.status_code == 200
    body = got.json()
    assert body["value"] == {"a": [1, 2], "b": None}
    assert body["version"] == str(entry.version)
    assert body["owner"] == "root" and body["expires_at"] is None
    assert entry.value == '{"a":[1,2],"b":null}'  # stored compact, like the API stores it


def test_adding_with_a_ttl_sets_the_expiry(root_client):
    before = int(time.time() * 1000)
    root_client.post(reverse("admin:kv_entry_add"), {"key": "t", "value": "1", "ttl": "5m"})
    expires_at = Entry.objects.get(key="t").expires_at
    assert before + 300_000 <= expires_at <= int(time.time() * 1000) + 300_000


def test_add_form_prefills_the_key_with_the_folder(root_client):
    response = root_client.get(reverse("admin:kv_entry_add"), {"key": "app/"})
    assert response.context["adminform"].form.initial["key"] == "app/"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        pytest.param({"key": "a", "value": '{"a": 1,'}, "value", "not valid JSON", id="json"),
        pytest.param({"key": "a", "value": "  "}, "value", "Enter a JSON value", id="empty"),
        pytest.param({"key": "a", "value": "NaN"}, "value", "not valid JSON", id="nan"),
        pytest.param({"key": "a//b", "value": "1"}, "key", "empty", id="empty-segment"),
        pytest.param({"key": "/a", "value": "1"}, "key", "start or end", id="leading-slash"),
        pytest.param({"key": "_sys/a", "value": "1"}, "key", "reserved", id="reserved"),
        pytest.param({"key": "a", "value": "1", "ttl": "5 min"}, "ttl", "Invalid ttl", id="ttl"),
        pytest.param({"key": "a", "value": "1", "ttl": "0"}, "ttl", "positive", id="ttl-zero"),
    ],
)
def test_bad_input_is_an_inline_error_and_changes_nothing(root_client, data, field, message):
    revision = store_state().revision
    response = root_client.post(reverse("admin:kv_entry_add"), {"ttl": "", **data})
    errors = form_errors(response)
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Entry.objects.filter(key__in=["a", "a//b", "/a", "_sys/a"]).exists()
    assert store_state().revision == revision
    assert 'class="errornote"' in response.content.decode()


def test_a_schema_violation_is_shown_next_to_the_value(root_client):
    schema_put(prefix="cfg/", schema={"type": "object", "required": ["name"]})
    response = root_client.post(reverse("admin:kv_entry_add"), {"key": "cfg/x", "value": "{}"})
    assert "breaks the schema" in form_errors(response)["value"][0]
    assert not Entry.objects.filter(key="cfg/x").exists()


def test_adding_an_existing_key_is_refused(root_client):
    entry = put("dup", "1")
    response = root_client.post(reverse("admin:kv_entry_add"), {"key": "dup", "value": "2"})
    assert "already exists" in form_errors(response)["key"][0]
    assert fresh(entry).version == entry.version


def test_staff_cannot_create_where_the_acl_rule_forbids_it(staff_client):
    acl_rule_put(prefix="locked/", owner="root", group=None, mode=mode_parse("cdwr--wr---r"))
    response = staff_client.post(reverse("admin:kv_entry_add"), {"key": "locked/x", "value": "1"})
    assert "does not let you create" in form_errors(response)["key"][0]
    assert not Entry.objects.filter(key="locked/x").exists()


# --- changing ------------------------------------------------------------------------------------


def test_change_form_shows_pretty_json_the_grid_and_the_mode_string(root_client):
    entry = put("doc", '{"a":{"b":[1,2]}}')
    html = root_client.get(change_url(entry)).content.decode()
    assert "{\n  &quot;a&quot;: {\n    &quot;b&quot;: [\n      1," in html
    assert html.count('type="checkbox" name="mode"') == 12
    assert '<output class="kv-mode-string" data-kv-mode-text>cdwr--wr---r</output>' in html
    assert "kvsite/mode-grid.js" in html


def test_the_mode_grid_saves_the_ticked_bits(root_client, api):
    entry = put("doc", '{"a":1}')
    response = root_client.post(change_url(entry), change_data(entry, mode=mode_bits(0xF61)))
    assert response.status_code == 302, form_errors(response)
    saved = fresh(entry)
    assert saved.mode == 0xF61  # owner cdwr, group -dw-, others ---r
    assert saved.value == '{"a":1}'
    meta = api.get(url("doc", base="/api/v1/meta/")).json()
    assert (meta["mode"], meta["mode_string"]) == (0xF61, "cdwr-dw----r")


def test_changing_the_value_writes_a_new_version_and_keeps_the_meta(root_client, api):
    Group.objects.create(name="ops")
    entry = put("doc", "1")
    data = change_data(entry, value='{"x": true}', group="ops")
    assert root_client.post(change_url(entry), data).status_code == 302
    body = api.get(url("doc")).json()
    assert body["value"] == {"x": True}
    assert (body["owner"], body["group"], body["mode"]) == ("root", "ops", entry.mode)
    versions = api.get(url("doc", base="/api/v1/history/")).json()["versions"]
    assert str(entry.version) in [v["version"] for v in versions]


def test_saving_an_unchanged_form_writes_nothing(root_client):
    entry = put("doc", '{"a":1}')
    revision = store_state().revision
    assert root_client.post(change_url(entry), change_data(entry)).status_code == 302
    assert store_state().revision == revision
    assert fresh(entry).version == entry.version


def test_a_new_ttl_sets_the_expiry_and_an_empty_one_keeps_it(root_client):
    entry = put("doc", "1", ttl=3600)
    root_client.post(change_url(entry), change_data(entry, value="2"))
    kept = fresh(entry)
    assert kept.value == "2" and abs(kept.expires_at - entry.expires_at) <= 1000
    root_client.post(change_url(kept), change_data(kept, clear_expiry="on"))
    assert fresh(entry).expires_at is None


def test_staff_without_write_get_a_form_error_not_a_change(staff_client):
    entry = put("doc", "1")  # cdwr--wr---r: others (bob) may only read
    response = staff_client.get(change_url(entry))
    assert response.status_code == 200
    response = staff_client.post(change_url(entry), change_data(entry, value="2"))
    assert "does not grant you write" in form_errors(response)["value"][0]
    assert fresh(entry).value == "1" and fresh(entry).version == entry.version


def test_staff_who_may_write_still_cannot_change_the_mode_of_others_keys(staff_client):
    entry = put("doc", "1")
    services.entry_meta_set(key="doc", mode=mode_parse("cdwr--wr--wr"), fields={"mode"})
    entry = fresh(entry)
    data = change_data(entry, value="2", mode=mode_bits("cdwrcdwrcdwr"))
    response = staff_client.post(change_url(entry), data)
    assert "owner" in form_errors(response)["mode"][0]
    assert fresh(entry).value == "1"  # the value write was rolled back with it


def test_staff_own_the_keys_they_add_and_may_change_their_mode(staff_client, staff):
    staff_client.post(reverse("admin:kv_entry_add"), {"key": "mine", "value": "1"})
    entry = Entry.objects.get(key="mine")
    assert entry.owner == "bob"
    data = change_data(entry, mode=mode_bits("cdwr--------"))
    assert staff_client.post(change_url(entry), data).status_code == 302
    assert fresh(entry).mode == mode_parse("cdwr--------")


def test_a_stale_form_does_not_overwrite_a_newer_version(root_client):
    entry = put("doc", "1")
    put("doc", "2")  # someone else, after the form was opened
    response = root_client.post(change_url(entry), change_data(entry, value="3"))
    assert "changed this entry since you opened it" in form_errors(response)["__all__"][0]
    assert fresh(entry).value == "2"


def test_change_page_shows_the_history_and_version_metadata(root_client):
    first = put("doc", '{"v":1}')
    second = put("doc", '{"v":2}')
    response = root_client.get(change_url(second))
    history = response.context["kv_history"]
    assert [v["version"] for v in history] == [second.version, first.version]
    assert history[0]["current"] and not history[1]["current"]
    html = response.content.decode()
    assert f'title="{first.version}">{str(first.version)[:8]}</code>' in html
    assert str(second.version) in html
    assert "History" in html and f'<div class="readonly">{second.revision}</div>' in html


# --- deleting ------------------------------------------------------------------------------------


def test_delete_view_confirms_then_leaves_a_tombstone(root_client, api):
    entry = put("doc", "1")
    delete_url = reverse("admin:kv_entry_delete", args=[entry.pk])
    assert root_client.get(delete_url).status_code == 200
    assert root_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert fresh(entry).deleted
    assert api.get(url("doc")).status_code == 404
    versions = api.get(url("doc", base="/api/v1/history/")).json()["versions"]
    assert versions[0]["deleted"] and versions[1]["version"] == str(entry.version)


def test_bulk_delete_confirms_then_tombstones_every_selected_key(root_client, api):
    a, b, c = put("a"), put("b"), put("c")
    data = {"action": "delete_selected", "_selected_action": [a.pk, b.pk]}
    confirm = root_client.post(reverse(CHANGELIST), data)
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    done = root_client.post(reverse(CHANGELIST), {**data, "post": "yes"})
    assert done.status_code == 302
    assert [fresh(e).deleted for e in (a, b, c)] == [True, True, False]
    assert api.get(url("a")).status_code == 404


def test_staff_without_delete_permission_in_the_mode_delete_nothing(staff_client, staff):
    mine = put("mine", caller=Caller(username="bob"))
    theirs = put("theirs")  # others have no d
    delete_url = reverse("admin:kv_entry_delete", args=[theirs.pk])
    response = staff_client.post(delete_url, {"post": "yes"}, follow=True)
    assert "Not deleted" in response.content.decode()
    assert not fresh(theirs).deleted
    data = {"action": "delete_selected", "_selected_action": [mine.pk, theirs.pk], "post": "yes"}
    response = staff_client.post(reverse(CHANGELIST), data, follow=True)
    assert "Nothing was deleted" in response.content.decode()
    assert not fresh(mine).deleted and not fresh(theirs).deleted  # all or nothing


# --- ACL rules and schemas -----------------------------------------------------------------------


def test_acl_rule_add_saves_the_grid_mode_through_the_policy(root_client, api):
    Group.objects.create(name="ops")
    data = {"prefix": "team/", "owner": "", "group": "ops", "mode": mode_bits("cdwrcdwr---r")}
    response = root_client.post(reverse("admin:kv_aclrule_add"), data)
    assert response.status_code == 302
    rule = AclRule.objects.get(prefix="team/")
    assert (rule.owner, rule.group, rule.mode) == (None, "ops", mode_parse("cdwrcdwr---r"))
    listed_rules = api.get("/api/v1/acl/").json()
    assert "team/" in json.dumps(listed_rules)
    put("team/k")
    assert Entry.objects.get(key="team/k").group == "ops"  # new keys take the rule's group


def test_acl_rule_with_a_bad_prefix_is_a_form_error(root_client):
    data = {"prefix": "/x", "owner": "", "group": "", "mode": mode_bits(0)}
    response = root_client.post(reverse("admin:kv_aclrule_add"), data)
    assert "start or end" in form_errors(response)["prefix"][0]
    assert not AclRule.objects.exists()


def test_acl_rule_change_keeps_the_prefix_and_updates_the_mode(root_client):
    rule, _ = acl_rule_put(prefix="p/", owner=None, group=None, mode=0)
    data = {"owner": "root", "group": "", "mode": mode_bits("c-----------")}
    change = reverse("admin:kv_aclrule_change", args=[rule.pk])
    assert root_client.post(change, data).status_code == 302
    rule.refresh_from_db()
    assert (rule.prefix, rule.owner, rule.mode) == ("p/", "root", mode_parse("c-----------"))
    assert root_client.post(reverse("admin:kv_aclrule_delete", args=[rule.pk]), {"post": "yes"})
    assert not AclRule.objects.exists()


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ('{"type": 5}', "Invalid JSON Schema"),
        ('{"type": ', "not valid JSON"),
        ("[1]", "object"),
        ('{"items": ' * 100_000 + "{}" + "}" * 100_000, "levels deep"),
        ('{"maximum": 123456789012345678901234567890}', "64 bits"),
    ],
)
def test_an_invalid_schema_is_a_form_error(root_client, schema, message):
    response = root_client.post(
        reverse("admin:kv_prefixschema_add"), {"prefix": "cfg/", "schema": schema}
    )
    assert message in form_errors(response)["schema"][0]
    assert not PrefixSchema.objects.exists()


def test_a_schema_saved_in_the_admin_governs_api_writes(root_client, api):
    schema = '{\n  "type": "object",\n  "required": ["name"]\n}'
    response = root_client.post(
        reverse("admin:kv_prefixschema_add"), {"prefix": "cfg/", "schema": schema}
    )
    assert response.status_code == 302
    saved = PrefixSchema.objects.get(prefix="cfg/")
    assert saved.schema == {"type": "object", "required": ["name"]}
    refused = api.put(url("cfg/x"), data="{}", content_type="application/json")
    assert refused.status_code == 400
    page = root_client.get(reverse("admin:kv_prefixschema_change", args=[saved.pk]))
    assert "{\n  &quot;type&quot;: &quot;object&quot;," in page.content.decode()


def test_view_only_staff_see_the_entry_read_only(client, staff):
    staff.user_permissions.set(Permission.objects.filter(codename="view_entry"))
    client.force_login(staff)
    entry = put("doc", '{"a":1}')
    response = client.get(change_url(entry))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="value"' not in html
    assert '<pre class="kv-json">{\n  &quot;a&quot;: 1\n}</pre>' in html
    assert '<div class="readonly"><code class="kv-mode-string">cdwr--wr---r</code></div>' in html
    assert client.post(change_url(entry), change_data(entry, value="2")).status_code == 403
    assert fresh(entry).value == '{"a":1}'
