"""The ACL from both sides: the owner/group/others × create/delete/write/read matrix, rule
inheritance, anonymous callers, superusers, filtered listings and history, and the rules API."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from kv import services
from kv.acl import CLASSES, PERMS, mode_bit, mode_parse

from .helpers import assert_error, created, list_url, put_json, url

pytestmark = pytest.mark.django_db
BASIC = ["read", "write", "delete"]
ALL_BITS = 0xFFF


@pytest.fixture
def people(make_client):
    """Clients for the owner, a member of the key's group, and someone else."""
    team = Group.objects.create(name="team")
    owner = User.objects.create(username="olivia")
    member = User.objects.create(username="gus")
    member.groups.add(team)
    other = User.objects.create(username="otto")
    return {
        "owner": make_client(scopes=BASIC, user=owner),
        "group": make_client(scopes=BASIC, user=member),
        "others": make_client(scopes=BASIC, user=other),
    }


def entry(key: str, *, mode: int, value="v") -> None:
    services.entry_put(key=key, value=f'"{value}"')
    services.entry_meta_set(
        key=key, owner="olivia", group="team", mode=mode, fields={"owner", "group", "mode"}
    )


def attempt(client, perm: str, key: str):
    if perm == "r":
        return client.get(url(key))
    if perm == "w":
        return put_json(client, key, "new value")
    if perm == "d":
        return client.delete(url(key))
    return put_json(client, f"{key}/child", "created")  # c: under a rule for `key/`


def grant(who: str, perm: str, key: str, *, granted: bool) -> None:
    bit = mode_bit(who, perm)
    mode = bit if granted else ALL_BITS & ~bit
    if perm == "c":
        services.entry_put(key="unrelated", value="1")  # keeps revision counters honest
        from kv.policy import acl_rule_put

        acl_rule_put(prefix=f"{key}/", owner="olivia", group="team", mode=mode)
    else:
        entry(key, mode=mode)


@pytest.mark.parametrize("who", CLASSES)
@pytest.mark.parametrize("perm", list(PERMS))
def test_a_granted_bit_allows_exactly_that_class(people, who, perm):
    grant(who, perm, "m", granted=True)
    response = attempt(people[who], perm, "m")
    assert response.status_code in (200, 201, 204), response.content


@pytest.mark.parametrize("who", CLASSES)
@pytest.mark.parametrize("perm", list(PERMS))
def test_a_missing_bit_denies_that_class_with_403_and_changes_nothing(people, api, who, perm):
    grant(who, perm, "m", granted=False)
    before = api.get("/api/v1/status").json()["revision"]
    assert_error(attempt(people[who], perm, "m"), 403)
    assert api.get("/api/v1/status").json()["revision"] == before


@pytest.mark.parametrize("perm", list(PERMS))
def test_superusers_bypass_every_mode(api, people, perm):
    grant("owner", perm, "m", granted=False)
    assert attempt(api, perm, "m").status_code in (200, 201, 204)


def test_a_new_key_takes_the_rule_group_and_mode_and_its_creator_as_owner(people, api):
    services_rule("apps/", group="team", mode="cdwrc-wr---r")
    assert put_json(people["group"], "apps/web", {"x": 1}).status_code == 201
    body = api.get(url("apps/web")).json()
    assert (body["owner"], body["group"], body["mode"]) == (
        "gus",
        "team",
        mode_parse("cdwrc-wr---r"),
    )


def test_without_a_rule_any_writer_creates_with_the_default_mode(people, api, settings):
    settings.KVS_DEFAULT_MODE = "cdwr-d-r----"
    assert put_json(people["others"], "free/x", 1).status_code == 201
    body = api.get(url("free/x")).json()
    assert (body["owner"], body["group"], body["mode"]) == (
        "otto",
        None,
        mode_parse("cdwr-d-r----"),
    )


def test_the_longest_matching_rule_governs_creation(people):
    services_rule("a/", group="team", mode="cdwrcdwrcdwr")
    services_rule("a/locked/", group="team", mode="cdwr--------")
    assert put_json(people["others"], "a/open", 1).status_code == 201
    assert_error(put_json(people["others"], "a/locked/x", 1), 403)
    assert put_json(people["owner"], "a/locked/x", 1).status_code == 201


def test_replacing_a_deleted_key_is_creation_again(people):
    services_rule("r/", group="team", mode="cdwr--------")
    entry("r/x", mode=ALL_BITS)
    assert people["others"].delete(url("r/x")).status_code == 204
    assert_error(put_json(people["others"], "r/x", 1), 403)  # the rule denies others 'c'


def test_listing_shows_only_readable_keys_and_directories(people):
    entry("l/open", mode=mode_parse("cdwr---r---r"))
    entry("l/secret", mode=mode_parse("cdwr--------"))
    entry("l/dir/open", mode=mode_parse("cdwr---r---r"))
    entry("l/hidden/secret", mode=mode_parse("cdwr--------"))
    body = people["others"].get(list_url(prefix="l/", separator="/")).json()
    assert [i["key"] for i in body["items"]] == ["l/open"]
    assert body["prefixes"] == ["l/dir/"]
    owner = people["owner"].get(list_url(prefix="l/", separator="/")).json()
    assert [i["key"] for i in owner["items"]] == ["l/open", "l/secret"]
    assert owner["prefixes"] == ["l/dir/", "l/hidden/"]


def test_listing_pages_fill_past_unreadable_keys(people):
    for i in range(10):
        entry(f"p/{i}", mode=mode_parse("cdwr--------" if i % 2 else "cdwr---r---r"))
    keys, cursor = [], None
    while True:
        query = {"prefix": "p/", "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = people["others"].get(list_url(**query)).json()
        keys += [i["key"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert keys == ["p/0", "p/2", "p/4", "p/6", "p/8"]


def test_history_needs_read_and_hides_versions_the_caller_could_not_read(people, api):
    entry("h", mode=mode_parse("cdwr--------"), value="secret")
    assert_error(people["others"].get(url("h", base="/api/v1/history/")), 403)
    api.put(url("h", base="/api/v1/meta/"), data={"mode": "cdwr---r---r"}, format="json")
    mine = people["others"].get(url("h", base="/api/v1/history/")).json()["versions"]
    every = api.get(url("h", base="/api/v1/history/")).json()["versions"]
    # the first put (default mode, others may read) and the current version, but not the
    # version whose mode denied others
    assert len(every) == 3
    assert [v["version"] for v in mine] == [every[0]["version"], every[2]["version"]]


def test_anonymous_readers_are_others(people, anon, settings):
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    entry("pub", mode=mode_parse("cdwr-------r"))
    entry("priv", mode=mode_parse("cdwr--------"))
    assert anon.get(url("pub")).status_code == 200
    assert_error(anon.get(url("priv")), 403)


def test_recursive_delete_is_all_or_nothing(people, api):
    entry("t/a", mode=ALL_BITS)
    entry("t/b", mode=mode_parse("cdwr--------"))
    assert_error(people["others"].delete(url("t", recurse="1")), 403)
    assert api.get(url("t/a")).status_code == 200
    assert people["owner"].delete(url("t", recurse="1")).json() == {"deleted": 2}


def test_meta_changes_need_the_owner_or_admin_acl(people, make_client):
    entry("o", mode=ALL_BITS)
    assert_error(
        people["group"].put(url("o", base="/api/v1/meta/"), {"mode": 0}, format="json"), 403
    )
    assert (
        people["owner"].put(url("o", base="/api/v1/meta/"), {"mode": 1}, format="json").status_code
        == 200
    )
    acl_admin = make_client(
        scopes=["read", "write", "admin:acl"], user=User.objects.create(username="a")
    )
    assert (
        acl_admin.put(url("o", base="/api/v1/meta/"), {"mode": 2}, format="json").status_code == 200
    )


def services_rule(prefix: str, *, group: str | None, mode: str) -> None:
    from kv.policy import acl_rule_put

    acl_rule_put(prefix=prefix, owner="olivia", group=group, mode=mode_parse(mode))


# --- The rules API ------------------------------------------------------------------------------


def test_rules_api_round_trip(api):
    Group.objects.create(name="ops")
    put = api.put("/api/v1/acl/ops/", {"group": "ops", "mode": "cdwrcdwr---r"}, format="json")
    assert put.status_code == 201, put.content
    assert put.json() == {
        "prefix": "ops/",
        "owner": None,
        "group": "ops",
        "mode": mode_parse("cdwrcdwr---r"),
        "mode_string": "cdwrcdwr---r",
    }
    assert api.put("/api/v1/acl/ops/", {"mode": 0}, format="json").status_code == 200
    assert api.get("/api/v1/acl/ops/").json()["mode"] == 0
    assert [r["prefix"] for r in api.get("/api/v1/acl/").json()] == ["ops/"]
    assert api.delete("/api/v1/acl/ops/").status_code == 204
    assert_error(api.get("/api/v1/acl/ops/"), 404)
    assert_error(api.delete("/api/v1/acl/ops/"), 404)


@pytest.mark.parametrize(
    "body",
    [{}, {"mode": "bad"}, {"mode": 5000}, {"mode": 1, "group": "nope"}, {"mode": 1, "owner": "x"}],
)
def test_rules_api_refuses_bad_rules(api, body):
    assert_error(api.put("/api/v1/acl/x/", body, format="json"), 400)
    assert api.get("/api/v1/acl/").json() == []


def test_rules_api_needs_admin_acl(make_client, anon):
    writer = make_client(scopes=["read", "write", "delete"])
    for response in (
        writer.get("/api/v1/acl/"),
        writer.put("/api/v1/acl/x/", {"mode": 1}, format="json"),
        writer.get("/api/v1/acl/x/"),
        writer.delete("/api/v1/acl/x/"),
    ):
        assert_error(response, 403)
    assert_error(anon.get("/api/v1/acl/"), 401)
    admin = make_client(scopes=["admin:acl"])
    assert admin.put("/api/v1/acl/x/", {"mode": 1}, format="json").status_code == 201


def test_a_rule_takes_effect_for_the_next_write(people, api):
    assert put_json(people["others"], "z/1", 1).status_code == 201
    api.put("/api/v1/acl/z/", {"owner": "olivia", "mode": "cdwr--------"}, format="json")
    assert_error(put_json(people["others"], "z/2", 1), 403)
    assert created(people["owner"], "z/2")["key"] == "z/2"
