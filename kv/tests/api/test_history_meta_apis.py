"""GET /api/v1/history/{key} and GET/PUT /api/v1/meta/{key}."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from kv.acl import mode_format

from .helpers import DEFAULT_MODE, assert_error, created, expire, node_status, put_json, url

pytestmark = pytest.mark.django_db


def history(client, key: str) -> dict:
    response = client.get(url(key, base="/api/v1/history/"))
    assert response.status_code == 200, response.content
    return response.json()


def meta_put(client, key: str, data):
    return client.put(url(key, base="/api/v1/meta/"), data=data, format="json")


def meta_get(client, key: str):
    return client.get(url(key, base="/api/v1/meta/"))


def write_versions(client, key: str, count: int) -> list[str]:
    """Write values 1..count to `key`; their version ids, oldest first."""
    return [put_json(client, key, value).json()["version"] for value in range(1, count + 1)]


# --- history -------------------------------------------------------------------------------------


def test_history_lists_the_current_version_then_previous_ones_newest_first(api):
    versions = write_versions(api, "h", 3)
    body = history(api, "h")
    assert body["key"] == "h"
    assert [v["version"] for v in body["versions"]] == versions[::-1]
    assert [v["value"] for v in body["versions"]] == [3, 2, 1]
    assert [v["deleted"] for v in body["versions"]] == [False, False, False]
    timestamps = [v["timestamp"] for v in body["versions"]]
    assert timestamps == sorted(timestamps, reverse=True)


def test_history_of_a_new_key_holds_just_its_current_version(api):
    version = created(api, "h", {"a": 1})["version"]
    body = history(api, "h")
    assert body["versions"] == [
        {**body["versions"][0], "version": version, "value": {"a": 1}, "deleted": False}
    ]


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_history_keeps_at_most_history_depth_previous_versions(api, settings, depth):
    settings.KVS_HISTORY_DEPTH = depth
    versions = write_versions(api, "h", 8)
    body = history(api, "h")
    assert [v["version"] for v in body["versions"]] == versions[::-1][: depth + 1]
    assert [v["value"] for v in body["versions"]] == list(range(8, 8 - depth - 1, -1))


def test_history_shows_a_delete_as_a_deleted_version(api):
    versions = write_versions(api, "h", 2)
    assert api.delete(url("h")).status_code == 204
    body = history(api, "h")
    assert len(body["versions"]) == 3
    tombstone = body["versions"][0]
    assert tombstone["deleted"] is True
    assert tombstone["value"] is None
    assert tombstone["version"] not in versions
    assert [v["version"] for v in body["versions"][1:]] == versions[::-1]
    assert [v["value"] for v in body["versions"][1:]] == [2, 1]


def test_history_of_a_key_deleted_and_written_again(api):
    first = created(api, "h", "one")["version"]
    assert api.delete(url("h")).status_code == 204
    again = created(api, "h", "two")["version"]
    body = history(api, "h")
    assert [(v["value"], v["deleted"]) for v in body["versions"]] == [
        ("two", False),
        (None, True),
        ("one", False),
    ]
    assert body["versions"][0]["version"] == again
    assert body["versions"][2]["version"] == first


def test_history_distinguishes_a_null_value_from_a_delete(api):
    created(api, "h", None)
    body = history(api, "h")
    assert body["versions"][0]["value"] is None
    assert body["versions"][0]["deleted"] is False


def test_history_of_a_never_existing_key_is_404(api):
    assert_error(api.get(url("never", base="/api/v1/history/")), 404)


def test_history_of_another_key_is_not_mixed_in(api):
    write_versions(api, "h", 2)
    write_versions(api, "h/child", 2)
    write_versions(api, "h2", 2)
    assert len(history(api, "h")["versions"]) == 2


def test_history_of_an_expired_key_is_still_answered(api):
    created(api, "h", ttl="60")
    expire("h")
    assert history(api, "h")["versions"][0]["value"] == 1


# --- meta GET ------------------------------------------------------------------------------------


def test_meta_get_shows_owner_group_and_mode(make_client):
    alice = make_client(scopes=["read", "write"])
    created(alice, "m")
    response = meta_get(alice, "m")
    assert response.status_code == 200
    body = response.json()
    assert body["owner"] == "alice"
    assert body["group"] is None
    assert body["mode"] == DEFAULT_MODE


def test_meta_get_of_an_absent_key_is_404(api):
    assert_error(meta_get(api, "never"), 404)


def test_meta_get_of_a_deleted_key_is_404(api):
    created(api, "m")
    api.delete(url("m"))
    assert_error(meta_get(api, "m"), 404)


# --- meta PUT ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0o7777, 0xFFF),
        (0, 0),
        (0xF00, 0xF00),
        ("cdwr-dw----r", 0xF61),
        ("cdwrcdwrcdwr", 0xFFF),
        ("------------", 0),
        ("---r---r---r", 0x111),
        ("3889", 3889),
    ],
)
def test_meta_put_sets_the_mode_from_a_number_or_the_12_letter_form(api, mode, expected):
    created(api, "m")
    response = meta_put(api, "m", {"mode": mode})
    assert response.status_code == 200, response.content
    assert response.json()["mode"] == expected
    assert meta_get(api, "m").json()["mode"] == expected
    assert api.get(url("m")).json()["mode"] == expected


def test_meta_put_mode_round_trips_through_its_letter_form(api):
    created(api, "m")
    meta_put(api, "m", {"mode": mode_format(0xA5C)})
    assert meta_get(api, "m").json()["mode"] == 0xA5C


def test_meta_put_sets_owner_and_group_to_existing_ones(api):
    User.objects.create(username="bob")
    Group.objects.create(name="ops")
    created(api, "m")
    response = meta_put(api, "m", {"owner": "bob", "group": "ops"})
    assert response.status_code == 200, response.content
    assert response.json()["owner"] == "bob"
    body = api.get(url("m")).json()
    assert (body["owner"], body["group"]) == ("bob", "ops")


def test_meta_put_changes_only_the_fields_given_and_keeps_the_value(api):
    Group.objects.create(name="ops")
    created(api, "m", {"keep": "me"}, ttl="5m")
    before = api.get(url("m")).json()
    assert meta_put(api, "m", {"group": "ops"}).status_code == 200
    after = api.get(url("m")).json()
    assert after["group"] == "ops"
    assert after["owner"] == before["owner"] == "root"
    assert after["mode"] == before["mode"]
    assert after["value"] == {"keep": "me"}
    assert after["expires_at"] == before["expires_at"]


def test_meta_put_group_null_clears_the_group(api):
    Group.objects.create(name="ops")
    created(api, "m")
    meta_put(api, "m", {"group": "ops"})
    assert meta_put(api, "m", {"group": None}).status_code == 200
    assert meta_get(api, "m").json()["group"] is None


def test_meta_put_of_an_absent_key_is_404(api):
    assert_error(meta_put(api, "never", {"mode": 0}), 404)
    assert api.get(url("never")).status_code == 404


@pytest.mark.parametrize(
    "data",
    [
        {"owner": "nobody"},
        {"group": "nogroup"},
        {"mode": 4096},
        {"mode": -1},
        {"mode": "rwxrwxrwxrwx"},
        {"mode": "cdwr"},
        {"mode": "rwdc--wr---r"},
        {"mode": True},
        {"mode": 1.5},
        {"mode": None},
        {"owner": ""},
        {},
        [],
        "mode",
    ],
)
def test_meta_put_with_bad_input_is_400_and_changes_nothing(api, data):
    created(api, "m")
    before = meta_get(api, "m").json()
    revision = node_status(api)["revision"]
    assert_error(meta_put(api, "m", data), 400)
    assert meta_get(api, "m").json() == before
    assert node_status(api)["revision"] == revision


def test_meta_put_with_a_malformed_body_is_400(api):
    created(api, "m")
    response = api.put(url("m", base="/api/v1/meta/"), data=b"{", content_type="application/json")
    assert_error(response, 400)


def test_meta_put_by_a_non_owner_without_admin_acl_is_403(make_client):
    alice = make_client(scopes=["read", "write"])
    created(alice, "m")
    bob = make_client(scopes=["read", "write"], user=User.objects.create(username="bob"))
    assert_error(meta_put(bob, "m", {"mode": 0xFFF}), 403)
    assert_error(meta_put(bob, "m", {"owner": "bob"}), 403)
    body = meta_get(alice, "m").json()
    assert (body["owner"], body["mode"]) == ("alice", DEFAULT_MODE)


def test_meta_put_by_the_owner_without_admin_acl_is_allowed(make_client):
    alice = make_client(scopes=["read", "write"])
    created(alice, "m")
    response = meta_put(alice, "m", {"mode": "cdwr--------"})
    assert response.status_code == 200, response.content
    assert meta_get(alice, "m").json()["mode"] == 0xF00


def test_meta_put_by_an_admin_acl_credential_that_does_not_own_the_key(make_client):
    alice = make_client(scopes=["read", "write"])
    created(alice, "m")
    admin = make_client(scopes=["write", "admin:acl"], user=User.objects.create(username="adm"))
    assert meta_put(admin, "m", {"mode": "cdwr--------"}).status_code == 200
    assert meta_get(alice, "m").json()["mode"] == 0xF00


def test_owner_who_gives_a_key_away_can_no_longer_change_its_meta(make_client):
    User.objects.create(username="bob")
    alice = make_client(scopes=["read", "write"])
    created(alice, "m")
    assert meta_put(alice, "m", {"owner": "bob"}).status_code == 200
    assert_error(meta_put(alice, "m", {"owner": "alice"}), 403)
    assert meta_get(alice, "m").json()["owner"] == "bob"


def test_meta_put_needs_write_scope_even_for_the_owner(make_client):
    alice = make_client(scopes=["read", "write"])
    created(alice, "m")
    reader = make_client(scopes=["read"])  # also alice's
    assert_error(meta_put(reader, "m", {"mode": 0}), 403)
    assert meta_get(alice, "m").json()["mode"] == DEFAULT_MODE


def test_meta_put_writes_a_new_version(api):
    version = created(api, "m")["version"]
    response = meta_put(api, "m", {"mode": 0})
    assert response.json()["version"] != version
    assert history(api, "m")["versions"][1]["version"] == version
