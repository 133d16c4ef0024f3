"""Credentials, scopes, anonymous settings, prefix-confined tokens and read-only nodes."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import token_create

from .helpers import assert_error, created, list_url, node_status, put_json, url

pytestmark = pytest.mark.django_db

HISTORY, META = "/api/v1/history/", "/api/v1/meta/"


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def every_request(client, key: str = "k"):
    """One request of each kind the key API serves, against `key`."""
    yield "GET", client.get(url(key))
    yield "HEAD", client.head(url(key))
    yield "list", client.get(list_url(prefix=key))
    yield "history", client.get(url(key, base=HISTORY))
    yield "meta GET", client.get(url(key, base=META))
    yield "PUT", put_json(client, key, "intruder")
    yield "PATCH ttl", client.patch(url(key), data={"ttl": "5m"}, format="json")
    yield "meta PUT", client.put(url(key, base=META), data={"mode": 0xFFF}, format="json")
    yield "DELETE", client.delete(url(key))
    yield "DELETE recurse", client.delete(url(key, recurse="1"))
    yield "status", client.get("/api/v1/status")


def assert_all_refused(client, api, status: int) -> None:
    """Every request answers `status` and the key `k` (written by root) is untouched."""
    version = created(api, "k", "v")["version"]
    revision = node_status(api)["revision"]
    for what, response in every_request(client):
        assert response.status_code == status, (what, response.content)
        if what != "HEAD":
            assert_error(response, status)
    got = api.get(url("k")).json()
    assert (got["version"], got["value"], got["mode"]) == (version, "v", 0xF31)
    assert node_status(api)["revision"] == revision


# --- 401 -----------------------------------------------------------------------------------------


def test_no_credential_is_401_everywhere(api, anon):
    assert_all_refused(anon, api, 401)
    assert anon.get(url("k"))["WWW-Authenticate"].startswith("Bearer")


def test_invalid_token_is_401(api):
    assert_all_refused(bearer("not-a-real-token"), api, 401)


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer  ", "Bearer é"])
def test_malformed_authorization_header_is_401(api, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    created(api, "k")
    assert_error(client.get(url("k")), 401)


def test_expired_token_is_401(api, root_user):
    issued = token_create(user=root_user, scopes=["*"], expires_in=3600)
    client = bearer(issued.secret)
    assert client.get(list_url()).status_code == 200
    issued.token.expires_at = timezone.now() - timedelta(seconds=1)
    issued.token.save(update_fields=["expires_at"])
    assert_all_refused(client, api, 401)


def test_revoked_token_is_401(api, root_user):
    issued = token_create(user=root_user, scopes=["*"])
    client = bearer(issued.secret)
    assert client.get(list_url()).status_code == 200
    issued.token.revoked_at = timezone.now()
    issued.token.save(update_fields=["revoked_at"])
    assert_all_refused(client, api, 401)


def test_token_of_a_deactivated_user_is_401(api, make_client):
    client = make_client(scopes=["*"])
    User.objects.filter(username="alice").update(is_active=False)
    assert_all_refused(client, api, 401)


def test_invalid_token_is_401_even_when_anonymous_access_is_allowed(api, settings):
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    settings.KVS_ALLOW_ANONYMOUS_WRITE = True
    created(api, "k")
    assert_error(bearer("wrong").get(url("k")), 401)
    assert_error(put_json(bearer("wrong"), "k", 2), 401)


# --- scopes --------------------------------------------------------------------------------------


def test_token_without_any_key_scope_is_403_everywhere(api, make_client):
    assert_all_refused(make_client(scopes=["pubsub", "admin:users:read"]), api, 403)


def test_read_token_can_read_but_not_write_or_delete(api, make_client):
    created(api, "k", "v")
    reader = make_client(scopes=["read"])
    assert reader.get(url("k")).json()["value"] == "v"
    assert reader.head(url("k")).status_code == 200
    assert reader.get(list_url(prefix="k")).status_code == 200
    assert reader.get(url("k", base=HISTORY)).status_code == 200
    assert reader.get(url("k", base=META)).status_code == 200
    assert reader.get("/api/v1/status").status_code == 200
    assert_error(put_json(reader, "k", "w"), 403)
    assert_error(put_json(reader, "new", "w"), 403)
    assert_error(reader.delete(url("k")), 403)
    assert_error(reader.delete(url("k", recurse="1")), 403)
    assert api.get(url("k")).json()["value"] == "v"
    assert api.get(url("new")).status_code == 404


def test_write_token_can_put_but_not_delete(api, make_client):
    writer = make_client(scopes=["write"])
    assert put_json(writer, "k", "v").status_code == 201
    assert put_json(writer, "k", "w").status_code == 200
    assert_error(writer.delete(url("k")), 403)
    assert_error(writer.delete(url("k", recurse="1")), 403)
    assert api.get(url("k")).json()["value"] == "w"


def test_write_token_cannot_read(api, make_client):
    created(api, "k")
    writer = make_client(scopes=["write"])
    assert_error(writer.get(url("k")), 403)
    assert_error(writer.get(list_url()), 403)


def test_delete_needs_the_delete_scope(api, make_client):
    created(api, "k")
    created(api, "d/1")
    created(api, "d/2")
    assert_error(make_client(scopes=["read", "write"]).delete(url("k")), 403)
    deleter = make_client(scopes=["delete"], user=User.objects.get(username="root"))
    assert deleter.delete(url("k")).status_code == 204
    assert deleter.delete(url("d", recurse="1")).json() == {"deleted": 2}
    assert api.get(url("k")).status_code == 404
    assert api.get(url("d/1")).status_code == 404


def test_scope_check_comes_before_existence(api, make_client):
    # A reader must not learn from a 404 vs 403 whether a key it may not delete exists.
    created(api, "k")
    reader = make_client(scopes=["read"])
    assert_error(reader.delete(url("k")), 403)
    assert_error(reader.delete(url("absent")), 403)


# --- anonymous settings --------------------------------------------------------------------------


def test_anonymous_read_lets_anon_read_but_not_write(api, anon, settings):
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    created(api, "k", "v")
    assert anon.get(url("k")).json()["value"] == "v"
    assert anon.get(url("k", raw="1")).content == b'"v"'
    assert anon.head(url("k")).status_code == 200
    assert [i["key"] for i in anon.get(list_url()).json()["items"]] == ["k"]
    assert anon.get(url("k", base=HISTORY)).status_code == 200
    assert_error(put_json(anon, "k", "w"), 401)
    assert_error(put_json(anon, "new", "w"), 401)
    assert_error(anon.delete(url("k")), 401)
    assert api.get(url("k")).json()["value"] == "v"


def test_anonymous_write_lets_anon_put_but_never_delete(api, anon, settings):
    settings.KVS_ALLOW_ANONYMOUS_WRITE = True
    created(api, "k", "v")
    assert put_json(anon, "new", 1).status_code == 201
    assert_error(put_json(anon, "k", "w"), 403)  # others may not write under the default mode
    assert (
        api.put(url("k", base=META), data={"mode": "cdwr--wr--wr"}, format="json").status_code
        == 200
    )
    assert put_json(anon, "k", "w").status_code == 200
    assert_error(anon.delete(url("k")), 401)
    assert_error(anon.delete(url("new", recurse="1")), 401)
    assert_error(anon.get(url("k")), 401)  # writing does not imply reading
    assert api.get(url("k")).json()["value"] == "w"
    assert api.get(url("new")).json()["owner"] is None


def test_anonymous_read_and_write_together_still_never_delete(api, anon, settings):
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    settings.KVS_ALLOW_ANONYMOUS_WRITE = True
    assert put_json(anon, "k", 1).status_code == 201
    assert anon.get(url("k")).status_code == 200
    assert_error(anon.delete(url("k")), 401)
    assert anon.get(url("k")).status_code == 200


def test_anonymous_writers_cannot_change_meta_even_of_keys_without_owner(api, anon, settings):
    settings.KVS_ALLOW_ANONYMOUS_WRITE = True
    assert put_json(anon, "k", 1).status_code == 201
    assert_error(anon.put(url("k", base=META), data={"mode": 0xFFF}, format="json"), 401)
    assert api.get(url("k", base=META)).json()["mode"] == 0xF31


def test_auth_disabled_lets_anon_do_everything(api, anon, settings):
    settings.KVS_AUTH_ENABLED = False
    assert put_json(anon, "k", "v").status_code == 201
    assert put_json(anon, "k", "w").status_code == 200
    assert anon.get(url("k")).json()["value"] == "w"
    assert anon.head(url("k")).status_code == 200
    assert anon.get(list_url()).status_code == 200
    assert anon.get(url("k", base=HISTORY)).status_code == 200
    meta = anon.put(url("k", base=META), data={"mode": 0}, format="json")
    assert meta.status_code == 200 and meta.json()["mode"] == 0
    assert anon.get("/api/v1/status").status_code == 200
    assert anon.delete(url("k")).status_code == 204
    assert put_json(anon, "d/1", 1).status_code == 201
    assert anon.delete(url("d", recurse="1")).json() == {"deleted": 1}
    assert anon.get(url("k")).status_code == 404


# --- prefix-confined tokens ----------------------------------------------------------------------


def test_prefix_token_can_touch_keys_under_its_prefix(make_client):
    team = make_client(scopes=["read", "write", "delete"], prefix="team/")
    assert put_json(team, "team/x", 1).status_code == 201
    assert team.get(url("team/x")).json()["value"] == 1
    assert team.head(url("team/x")).status_code == 200
    assert [i["key"] for i in team.get(list_url(prefix="team/")).json()["items"]] == ["team/x"]
    assert team.get(url("team/x", base=HISTORY)).status_code == 200
    meta = team.put(url("team/x", base=META), data={"mode": "cdwr--------"}, format="json")
    assert meta.status_code == 200
    assert team.delete(url("team/x")).status_code == 204
    assert put_json(team, "team/d/1", 1).status_code == 201
    assert team.delete(url("team/d", recurse="1")).json() == {"deleted": 1}


@pytest.mark.parametrize("key", ["other/x", "team", "teamx/y", "x/team/y"])
def test_prefix_token_gets_403_outside_its_prefix(api, make_client, key):
    created(api, key, "v")
    team = make_client(scopes=["*"], prefix="team/")
    for what, response in every_request(team, key):
        if what == "status":
            continue
        assert response.status_code == 403, (what, response.content)
        if what != "HEAD":
            assert_error(response, 403)
    assert api.get(url(key)).json()["value"] == "v"


def test_prefix_token_cannot_list_beyond_its_prefix(api, make_client):
    created(api, "team/x")
    created(api, "teamx")
    team = make_client(scopes=["read"], prefix="team/")
    assert_error(team.get(list_url()), 403)
    assert_error(team.get(list_url(prefix="team")), 403)  # would include teamx
    assert_error(team.get(list_url(prefix="te", separator="/")), 403)


def test_prefix_token_recursive_delete_above_its_prefix_is_403(api, make_client):
    created(api, "team/x")
    team = make_client(scopes=["*"], prefix="team/")
    assert_error(team.delete(url("team", recurse="1")), 403)
    assert api.get(url("team/x")).status_code == 200


# --- read-only node ------------------------------------------------------------------------------


def test_read_only_node_refuses_writes_with_403_and_serves_reads(api, settings):
    created(api, "k", "v")
    created(api, "d/1")
    revision = node_status(api)["revision"]
    settings.KVS_READ_ONLY = True
    for response in [
        put_json(api, "k", "w"),
        put_json(api, "new", 1),
        put_json(api, "k", "w", cas="0"),
        api.delete(url("k")),
        api.delete(url("d", recurse="1")),
        api.put(url("k", base=META), data={"mode": 0}, format="json"),
    ]:
        assert assert_error(response, 403).get("mode") == "read-only"
    assert api.get(url("k")).json()["value"] == "v"
    assert api.head(url("d/1")).status_code == 200
    assert api.get(url("new")).status_code == 404
    assert api.get(list_url()).status_code == 200
    assert api.get(url("k", base=HISTORY)).status_code == 200
    assert api.get(url("k", base=META)).json()["mode"] == 0xF31
    status = node_status(api)
    assert status["mode"] == "read-only"
    assert status["revision"] == revision
