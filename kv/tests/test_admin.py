"""The admin of entries, ACL rules and schemas: it browses live keys by folder, and its writes go
through kv.services with the same validation, versions and ACL checks as the API."""

import json
import re
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings
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


def assert_admin_page(response, status: int, title: str) -> str:
    """`response` is an error page in the admin's look (never the API's JSON)."""
    assert response.status_code == status, response.status_code
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    html = response.content.decode()
    assert f"<h1>{title}</h1>" in html and 'id="site-name"' in html
    assert f'data-kv-error="{status}"' in html
    return html


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
    """A staff user who is no superuser and holds no Django permission: the admin gives them
    what their login's scopes (read, write, delete, pubsub) allow, then each key's ACL."""
    return User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)


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


ADMIN_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def test_changelist_shows_value_preview_owner_mode_updated_and_expiry(root_client):
    entry = put("cfg", json.dumps({"name": "x" * 100}, separators=(",", ":")), ttl=3600)
    response = root_client.get(reverse(CHANGELIST))
    html = response.content.decode()
    for column in ("key_link", "value_short", "owner", "group", "mode_short", "updated", "expires"):
        assert f'class="field-{column}' in html, column  # every column, in every row
    assert "cdwr--wr---r" in html
    assert "{&quot;name&quot;:&quot;xxxxx" in html and "x" * 100 not in html  # a short preview
    updated = datetime.fromtimestamp(entry.timestamp / 1000, tz=UTC)
    assert updated.strftime("%Y-%m-%d %H:%M:%S UTC") in html  # the admin's one date format
    assert len(ADMIN_TIME.findall(html)) == 2  # updated and expires


def test_a_long_key_wraps_in_its_column(root_client):
    long_key = "app/" + "a-very-long-segment-" * 40
    put(long_key.rstrip("-"))
    html = root_client.get(reverse(CHANGELIST), {"flat": "1"}).content.decode()
    assert '<th class="field-key_link">' in html
    css = (settings.BASE_DIR / "static/kvsite/admin.css").read_text()
    assert re.search(r"#result_list th\.field-key_link \{[^}]*overflow-wrap: anywhere", css)
    assert re.search(r"#result_list td\.field-value_short \{[^}]*text-overflow: ellipsis", css)


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


def test_a_key_staff_may_only_read_opens_read_only_and_a_post_is_an_admin_page(staff_client):
    entry = put("doc", '{"a":1}')  # cdwr--wr---r: others (bob) may only read
    response = staff_client.get(change_url(entry))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="value"' not in html and 'name="mode"' not in html
    assert "its mode lets you change nothing" in html
    assert '<pre class="kv-json">{\n  &quot;a&quot;: 1\n}</pre>' in html
    assert '<div class="readonly"><code class="kv-mode-string">cdwr--wr---r</code></div>' in html
    refused = staff_client.post(change_url(entry), change_data(entry, value="2"))
    assert_admin_page(refused, 403, "Permission denied")
    assert fresh(entry).value == '{"a":1}' and fresh(entry).version == entry.version


def test_a_key_staff_may_write_but_do_not_own_has_its_access_fields_disabled(staff_client):
    entry = put("doc", "1")
    services.entry_meta_set(key="doc", mode=mode_parse("cdwr--wr--wr"), fields={"mode"})
    entry = fresh(entry)
    form = staff_client.get(change_url(entry)).context["adminform"].form
    assert [form.fields[f].disabled for f in ("owner", "group", "mode")] == [True] * 3
    assert not form.fields["value"].disabled
    data = change_data(entry, value="2", mode=mode_bits("cdwrcdwrcdwr"), owner="bob")
    response = staff_client.post(change_url(entry), data)
    assert response.status_code == 302, form_errors(response)
    saved = fresh(entry)
    assert saved.value == "2"  # the value they may write
    assert (saved.owner, saved.mode) == ("root", mode_parse("cdwr--wr--wr"))  # not the meta


def test_the_key_page_refuses_a_value_write_the_mode_forbids_as_a_form_error(client, staff):
    # Owners may change the meta of their keys even when the mode denies them w; the value is
    # refused where it is typed.
    entry = put("doc", "1", caller=Caller(username="bob"))
    services.entry_meta_set(key="doc", mode=mode_parse("c--r--------"), fields={"mode"})
    client.force_login(staff)
    entry = fresh(entry)
    response = client.post(change_url(entry), change_data(entry, value="2"))
    assert "does not grant you write" in form_errors(response)["value"][0]
    assert 'class="errornote"' in response.content.decode()
    assert fresh(entry).value == "1"


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
    assert "deletelink" in staff_client.get(change_url(mine)).content.decode()
    assert "deletelink" not in staff_client.get(change_url(theirs)).content.decode()
    delete_url = reverse("admin:kv_entry_delete", args=[theirs.pk])
    assert_admin_page(staff_client.post(delete_url, {"post": "yes"}), 403, "Permission denied")
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


# --- staff who are not superusers: their scopes, then the keys' ACLs -----------------------------


def admin_links(response) -> set[str]:
    """The model pages the index (or an app's index) links to."""
    assert response.status_code == 200, response.status_code
    return {m["admin_url"] for app in response.context["app_list"] for m in app["models"]}


def test_the_index_offers_staff_the_store_and_nothing_their_scopes_do_not_allow(staff_client):
    response = staff_client.get(reverse("admin:index"))
    html = response.content.decode()
    assert "have permission to view or edit anything" not in html
    assert admin_links(response) == {
        "/admin/kv/entry/",
        "/admin/kv/prefixschema/",  # read: view only
        "/admin/cluster/member/",  # read: view only
        "/admin/query/valueindex/",  # read: view only
    }
    models = {
        m["object_name"]: m["perms"] for a in response.context["app_list"] for m in a["models"]
    }
    assert models["Entry"] == {"add": True, "change": True, "delete": True, "view": True}
    assert models["PrefixSchema"] == {"add": False, "change": False, "delete": False, "view": True}


def test_superusers_get_every_page(root_client):
    assert admin_links(root_client.get(reverse("admin:index"))) >= {
        "/admin/kv/entry/",
        "/admin/kv/aclrule/",
        "/admin/kv/prefixschema/",
        "/admin/accounts/user/",
        "/admin/auth/group/",
        "/admin/accounts/apitoken/",
        "/admin/cluster/member/",
    }


def test_users_who_are_not_staff_are_sent_to_the_login_page(client):
    plain = User.objects.create_user(username="carol", password="carol-password-1")
    client.force_login(plain)
    put("public/doc")
    for path in ("/admin/", "/admin/kv/entry/", reverse("admin:kv_entry_add")):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    refused = client.post(reverse("admin:kv_entry_add"), {"key": "x", "value": "1"})
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    assert not Entry.objects.filter(key="x").exists()


def test_staff_browse_folders_and_add_where_the_rule_allows(staff_client):
    put("shared/a")
    acl_rule_put(prefix="team/", owner=None, group=None, mode=mode_parse("cdwrcdwrcdwr"))
    response = staff_client.get(reverse(CHANGELIST))
    assert [f["name"] for f in response.context["kv_folders"]] == ["shared/"]
    assert "Add entry" in response.content.decode()
    added = staff_client.post(reverse("admin:kv_entry_add"), {"key": "team/x", "value": "1"})
    assert added.status_code == 302
    assert Entry.objects.get(key="team/x").owner == "bob"


def test_staff_may_not_open_acl_rules_unless_given_the_django_permission(client, staff):
    rule, _ = acl_rule_put(prefix="p/", owner=None, group=None, mode=0)
    client.force_login(staff)
    html = assert_admin_page(
        client.get(reverse("admin:kv_aclrule_changelist")), 403, "Permission denied"
    )
    assert "Forbidden." not in html
    refused = client.post(reverse("admin:kv_aclrule_add"), {"prefix": "q/", "mode": ["0"]})
    assert_admin_page(refused, 403, "Permission denied")
    assert not AclRule.objects.filter(prefix="q/").exists()

    staff.user_permissions.add(Permission.objects.get(codename="change_aclrule"))
    client.force_login(User.objects.get(pk=staff.pk))  # fresh permission cache
    assert client.get(reverse("admin:kv_aclrule_changelist")).status_code == 200
    entry = put("theirs")
    data = change_data(entry, mode=mode_bits("cdwr-dwr-dwr"))
    assert client.post(change_url(entry), data).status_code == 302  # the perm counts as admin:acl
    assert fresh(entry).mode == mode_parse("cdwr-dwr-dwr")


def test_staff_read_schemas_but_do_not_change_them(staff_client):
    schema, _ = schema_put(prefix="cfg/", schema={"type": "object"})
    page = staff_client.get(reverse("admin:kv_prefixschema_change", args=[schema.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and 'name="schema"' not in html
    assert "&quot;type&quot;: &quot;object&quot;" in html
    refused = staff_client.post(
        reverse("admin:kv_prefixschema_change", args=[schema.pk]), {"schema": "{}"}
    )
    assert_admin_page(refused, 403, "Permission denied")
    assert PrefixSchema.objects.get(pk=schema.pk).schema == {"type": "object"}


# --- the key page: no Django history button, the c column explained -----------------------------


def test_the_key_page_has_its_own_history_and_not_djangos_button(root_client):
    entry = put("doc")
    html = root_client.get(change_url(entry)).content.decode()
    assert 'class="historylink"' not in html
    assert 'id="kv-history"' in html
    history = root_client.get(reverse("admin:kv_entry_history", args=[entry.pk]))
    assert history.status_code == 302 and history["Location"] == change_url(entry) + "#kv-history"


def test_the_history_shows_the_admins_date_format_and_scrolls_on_its_own(root_client):
    entry = put("doc")
    html = root_client.get(change_url(entry)).content.decode()
    written = datetime.fromtimestamp(entry.timestamp / 1000, tz=UTC)
    history = html[html.index('id="kv-history"') :]
    assert written.strftime("%Y-%m-%d %H:%M:%S UTC") in history
    assert '<div class="kv-scroll">' in history


def test_an_existing_keys_c_column_is_disabled_and_says_why(root_client):
    entry = put("doc")
    html = root_client.get(change_url(entry)).content.decode()
    boxes = re.findall(r'<input type="checkbox" name="mode"[^>]*>', html)
    create = [box for box in boxes if 'data-letter="c"' in box]
    assert len(create) == 3 and all(" disabled" in box for box in create)
    assert not any(" disabled" in box for box in boxes if 'data-letter="c"' not in box)
    assert "Creating keys is decided by the ACL rule of the key&#x27;s prefix" in html
    # A posted c column is ignored: the key keeps its own.
    data = change_data(entry, mode=mode_bits("-dwr--wr---r"))
    assert root_client.post(change_url(entry), data).status_code == 302
    assert fresh(entry).mode == mode_parse("cdwr--wr---r")


def test_the_rule_grids_c_column_stays_editable(root_client):
    html = root_client.get(reverse("admin:kv_aclrule_add")).content.decode()
    boxes = re.findall(r'<input type="checkbox" name="mode"[^>]*>', html)
    assert len(boxes) == 12 and not any(" disabled" in box for box in boxes)


# --- history: actor, diff, revert ----------------------------------------------------------------


def revert_url(entry: Entry) -> str:
    return reverse("admin:kv_entry_revert", args=[entry.pk])


def test_the_history_shows_each_versions_actor_and_its_diff_against_the_one_before(root_client):
    first = put("doc", '{"a":1,"b":2}', caller=Caller(username="alice"))
    put("doc", '{"a":1,"b":3}')
    current = services.entry_put(key="doc", value='{"a":1,"b":3}')[0]  # a system write
    response = root_client.get(change_url(current))
    history = response.context["kv_history"]
    assert [v["actor"] for v in history] == [None, "root", "alice"]
    assert history[0]["diff"] == [] and history[2]["diff"] is None  # same value; the first
    lines = [(line["kind"], line["text"]) for line in history[1]["diff"]]
    assert ("del", '-  "b": 2') in lines and ("add", '+  "b": 3') in lines
    assert lines[0] == ("file", f"--- {str(first.version)[:8]}")
    html = response.content.decode()
    table = html[html.index('id="kv-history"') :]
    assert '<td class="kv-actor">alice</td>' in table and "same value" in table
    assert '<span class="kv-diff-add">+  &quot;b&quot;: 3</span>' in table


def test_any_two_versions_can_be_compared(root_client):
    first = put("doc", '{"a":1,"b":2}')
    put("doc", '{"a":1,"b":3}')
    current = put("doc", '{"a":5,"b":3}')
    url = change_url(current)
    assert root_client.get(url).context["kv_compare"] is None
    response = root_client.get(url, {"compare": str(first.version), "with": str(current.version)})
    lines = [(line["kind"], line["text"]) for line in response.context["kv_compare"]["diff"]]
    assert ("del", '-  "a": 1,') in lines and ("add", '+  "a": 5,') in lines
    assert ("del", '-  "b": 2') in lines and ("add", '+  "b": 3') in lines
    html = response.content.decode()
    assert 'id="kv-compare"' in html and "kv-compare-result" in html
    same = root_client.get(url, {"compare": str(current.version), "with": str(current.version)})
    assert "hold the same value" in same.content.decode()
    unknown = root_client.get(url, {"compare": "nope", "with": str(current.version)})
    assert unknown.status_code == 200 and unknown.context["kv_compare"] is None


def test_revert_button_posts_with_csrf_and_writes_the_old_value(client, root_user):
    csrf = client.__class__(enforce_csrf_checks=True)
    csrf.force_login(root_user)
    first = put("doc", '{"v":1}')
    current = put("doc", '{"v":2}')
    html = csrf.get(change_url(current)).content.decode()
    assert f'<form id="kv-revert-form" method="post" action="{revert_url(current)}">' in html
    assert f'form="kv-revert-form" name="version" value="{first.version}"' in html
    assert f'value="{current.version}">Revert' not in html  # not the current version
    assert csrf.post(revert_url(current), {"version": str(first.version)}).status_code == 403
    token = csrf.cookies[settings.CSRF_COOKIE_NAME].value
    response = csrf.post(
        revert_url(current), {"version": str(first.version), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(current) + "#kv-history"
    reverted = Entry.objects.get(key="doc")
    assert reverted.value == '{"v":1}' and reverted.actor == "root"
    assert reverted.version not in (first.version, current.version)
    page = csrf.get(response["Location"])
    assert "Reverted doc to version" in page.content.decode()
    assert csrf.get(revert_url(current)).status_code == 405  # POST only


def test_revert_is_refused_to_staff_the_keys_acl_denies_write(staff_client, staff, root_user):
    first = put("doc", '"one"')
    put("doc", '"two"')
    current = services.entry_meta_set(
        key="doc",
        owner="root",
        group=None,
        mode=mode_parse("cdwr-------r"),
        fields={"owner", "group", "mode"},
    )  # fmt: skip  (others: read only)
    page = staff_client.get(change_url(current))
    assert page.status_code == 200
    assert not any(v["revertable"] for v in page.context["kv_history"])
    assert "Revert to this version" not in page.content.decode()
    response = staff_client.post(revert_url(current), {"version": str(first.version)}, follow=True)
    assert "Not reverted:" in response.content.decode()
    assert Entry.objects.get(key="doc").value == '"two"'


def test_revert_by_permitted_staff_and_its_failure_message(staff_client, staff):
    from kv.policy import schema_delete

    first = put("s/doc", '"one"', caller=Caller(username="bob"))
    current = put("s/doc", '"two"', caller=Caller(username="bob"))
    schema_put(prefix="s/", schema={"type": "string", "enum": ["two"]})
    page = staff_client.get(change_url(current))
    assert [v["revertable"] for v in page.context["kv_history"]] == [False, True]
    response = staff_client.post(revert_url(current), {"version": str(first.version)}, follow=True)
    assert "Not reverted:" in response.content.decode()  # the schema refuses the old value
    assert Entry.objects.get(key="s/doc").value == '"two"'
    schema_delete(prefix="s/")
    response = staff_client.post(revert_url(current), {"version": str(first.version)}, follow=True)
    assert "Reverted s/doc to version" in response.content.decode()
    assert Entry.objects.get(key="s/doc").value == '"one"'
    assert Entry.objects.get(key="s/doc").actor == "bob"
