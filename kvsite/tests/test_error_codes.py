"""One code per meaning on every endpoint (kvsite.exceptions lists them): DRF's own codes
(`permission_denied`, `not_authenticated`, `authentication_failed`, `parse_error`) never leak."""

import pytest

from kv.tests.api.helpers import assert_error, put_raw, url
from kv.tests.realtime import channel_layer, handshake_refusal  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def code(response, status: int) -> str:
    return assert_error(response, status)["code"]


def test_every_refused_credential_is_401_unauthenticated(anon, make_client, settings):
    from accounts.tests.helpers import bearer

    assert code(anon.get(url("k")), 401) == "unauthenticated"
    assert code(anon.post("/api/v1/users", {"username": "x"}, format="json"), 401) == (
        "unauthenticated"
    )
    assert code(bearer("kvs_unknown").get(url("k")), 401) == "unauthenticated"
    assert code(bearer("a.b.c").get("/api/v1/whoami"), 401) == "unauthenticated"
    login = {"username": "nobody", "password": "wrong-password"}
    assert code(anon.post("/api/v1/auth/login", login, format="json"), 401) == "unauthenticated"
    assert code(anon.post("/cluster/internal/gossip", {}, format="json"), 401) == "unauthenticated"


def test_every_403_is_forbidden_scopes_prefixes_acl_and_read_only(api, make_client, settings):
    assert put_raw(api, "mine/k", "1").status_code == 201
    assert api.put(url("mine/k", base="/api/v1/meta/"), {"mode": 0}, format="json").status_code == (
        200
    )  # the owner keeps nothing for the group or others
    reader = make_client(scopes=["read"])
    confined = make_client(scopes=["read", "write"], prefix="team/")
    refusals = [
        put_raw(reader, "a", "1"),  # lacks the write scope
        reader.post("/api/v1/users", {"username": "x"}, format="json"),  # lacks admin:users
        confined.get(url("other/k")),  # outside its prefix
        make_client(scopes=["read"]).get(url("mine/k")),  # the entry's mode (ACL)
        make_client(scopes=["read"]).get(url("mine/k", base="/api/v1/history/")),
    ]
    for response in refusals:
        assert code(response, 403) == "forbidden", response.content
    settings.KVS_READ_ONLY = True
    assert code(put_raw(api, "a", "1"), 403) == "forbidden"


@pytest.mark.usefixtures("channel_layer")
def test_a_refused_websocket_answers_the_same_codes(make_client):
    reader = make_client(scopes=["read"]).token.secret
    assert handshake_refusal("/ws/v1/pubsub/t", token=reader) == (403, "forbidden")
    assert handshake_refusal("/ws/v1/pubsub/t", token="kvs_unknown") == (401, "unauthenticated")
    assert handshake_refusal("/ws/v1/nowhere", token=reader) == (404, "not_found")
    assert handshake_refusal("/ws/v1/pubsub/a//b", token=reader) == (400, "invalid_key")


def test_other_statuses_have_one_code_each(api, anon, settings):
    version = put_raw(api, "k", "1").json()["version"]
    assert code(api.get(url("absent")), 404) == "not_found"
    assert code(api.get("/api/v1/users/nobody"), 404) == "not_found"
    assert code(api.get("/api/v1/nowhere"), 404) == "not_found"
    assert code(api.post(url("k"), b"1", content_type="application/json"), 405) == (
        "method_not_allowed"
    )
    assert code(put_raw(api, "k", "2", cas="0"), 409) == "conflict"
    assert code(put_raw(api, "k", "2", cas=version.replace("a", "b", 1) + "x"), 400) == "invalid"
    settings.KVS_MAX_VALUE_BYTES = 4
    assert code(put_raw(api, "k", '"long"'), 413) == "too_large"
    assert code(put_raw(api, "k", "{"), 400) == "invalid_json"
    assert code(api.post("/api/v1/groups", b"{", content_type="application/json"), 400) == (
        "invalid_json"
    )
    assert code(put_raw(api, "a//b", "1"), 400) == "invalid_key"
    assert code(api.post("/api/v1/groups", {}, format="json"), 400) == "invalid"
