"""PATCH of a key: a new version with the same value and a refreshed (or cleared) expiry."""

import pytest

from accounts.models import User
from kv.hlc import wall_ms

from .helpers import assert_error, created, expire, node_status, put_json, url

pytestmark = pytest.mark.django_db

HISTORY = "/api/v1/history/"


def patch(client, key: str, body):
    return client.patch(url(key), data=body, format="json")


def test_refresh_answers_as_put_does_with_a_new_version_and_the_new_expiry(api):
    put = created(api, "k", {"a": 1}, ttl="60")
    before = wall_ms()
    response = patch(api, "k", {"ttl": "5m"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"key", "version", "timestamp", "revision"} <= body.keys()
    assert body["version"] != put["version"] and body["revision"] > put["revision"]
    got = api.get(url("k")).json()
    assert got["value"] == {"a": 1} and got["version"] == body["version"]
    assert before + 300_000 <= got["expires_at"] <= wall_ms() + 300_000
    versions = api.get(url("k", base=HISTORY)).json()["versions"]
    assert [v["value"] for v in versions] == [{"a": 1}, {"a": 1}]


@pytest.mark.parametrize(("ttl", "seconds"), [(90, 90), ("90", 90), ("2h", 7200)])
def test_refresh_takes_seconds_or_a_unit(api, ttl, seconds):
    created(api, "k")
    start = wall_ms()
    assert patch(api, "k", {"ttl": ttl}).status_code == 200
    expires_at = api.get(url("k")).json()["expires_at"]
    assert abs(expires_at - (start + seconds * 1000)) < 2000


def test_refresh_with_null_clears_the_expiry(api):
    created(api, "k", ttl="60")
    assert patch(api, "k", {"ttl": None}).status_code == 200
    assert api.get(url("k")).json()["expires_at"] is None


def test_refresh_keeps_owner_group_and_mode(make_client, api):
    alice = make_client(scopes=["read", "write"])
    created(alice, "k", 1)
    assert patch(alice, "k", {"ttl": "1h"}).status_code == 200
    got = api.get(url("k")).json()
    assert (got["owner"], got["mode"]) == ("alice", 0xF31)


@pytest.mark.parametrize("setup", ["absent", "deleted", "expired"])
def test_refresh_of_a_missing_key_is_404_and_writes_nothing(api, setup):
    if setup != "absent":
        created(api, "k", ttl="60")
        if setup == "deleted":
            assert api.delete(url("k")).status_code == 204
        else:
            expire("k")
    revision = node_status(api)["revision"]
    assert_error(patch(api, "k", {"ttl": "5m"}), 404)
    assert node_status(api)["revision"] == revision


@pytest.mark.parametrize(
    "body",
    [{}, {"ttl": "soon"}, {"ttl": "0"}, {"ttl": True}, {"ttl": [1]}, {"ttl": "5m", "x": 1}, [1]],
)
def test_refresh_with_a_bad_body_is_400(api, body):
    created(api, "k")
    assert_error(patch(api, "k", body), 400)


def test_refresh_of_a_bad_key_is_400(api):
    assert_error(patch(api, "_sys/x", {"ttl": "5m"}), 400)


def test_refresh_needs_the_write_scope(api, make_client):
    created(make_client(scopes=["write"]), "k", ttl="60")  # owned by alice
    expires_at = api.get(url("k")).json()["expires_at"]
    assert_error(patch(make_client(scopes=["read"]), "k", {"ttl": "5m"}), 403)
    assert patch(make_client(scopes=["write"]), "k", {"ttl": "5m"}).status_code == 200
    assert api.get(url("k")).json()["expires_at"] != expires_at


def test_refresh_needs_w_in_the_key_mode(api, make_client):
    bob = User.objects.create_user(username="bob")
    created(api, "k", ttl="60")  # owned by root, others may only read
    before = api.get(url("k")).json()
    assert_error(patch(make_client(user=bob, scopes=["read", "write"]), "k", {"ttl": "5m"}), 403)
    assert api.get(url("k")).json()["version"] == before["version"]
    assert put_json(api, "k", 1).status_code == 200


def test_refresh_without_credential_is_401(api, anon):
    created(api, "k")
    assert_error(patch(anon, "k", {"ttl": "5m"}), 401)


def test_refresh_on_a_read_only_node_is_403(api, settings):
    created(api, "k")
    settings.KVS_READ_ONLY = True
    assert_error(patch(api, "k", {"ttl": "5m"}), 403)
