"""Request bodies on every endpoint: JSON whatever the Content-Type, within the same limits, and
every refusal a 4xx JSON error (these were 415s and 500s)."""

import time

import orjson
import pytest

from accounts.models import User
from accounts.services import jwt_issue
from kv.tests.api.helpers import assert_error
from kv.tests.realtime import channel_layer  # noqa: F401 (a fixture)
from pubsub import services as pubsub_services

pytestmark = pytest.mark.django_db

PASSWORD = "root-password-1"  # the root_user fixture's
CONTENT_TYPES = [
    pytest.param("", id="none"),
    pytest.param("application/x-www-form-urlencoded", id="form"),  # curl -d's default
    pytest.param("text/plain", id="text"),
    pytest.param("application/json; charset=utf-8", id="json-charset"),
]


@pytest.fixture
def forwarded(monkeypatch) -> list:
    sent: list = []
    monkeypatch.setattr(pubsub_services, "forward_soon", sent.append)
    return sent


def body_requests(n: int):
    """(method, path, JSON body, success status) for every endpoint that reads a body; `n` keeps
    the names of one run apart from another's."""
    refresh = jwt_issue(user=User.objects.get(username="root"))["refresh"]
    return [
        ("PUT", f"/api/v1/kv/ct{n}/key", {"a": n}, 201),
        ("PUT", "/api/v1/meta/shared/key", {"mode": "cdwr--wr---r"}, 200),
        ("PUT", f"/api/v1/acl/ct{n}/", {"mode": "cdwrcdwr---r"}, 201),
        ("PUT", f"/api/v1/schemas/ct{n}/", {"type": "object"}, 201),
        ("POST", "/api/v1/users", {"username": f"user{n}", "groups": ["ops"]}, 201),
        ("PATCH", "/api/v1/users/alice", {"email": f"a{n}@example.com"}, 200),
        ("POST", "/api/v1/groups", {"name": f"group{n}", "members": ["alice"]}, 201),
        ("PATCH", "/api/v1/groups/ops", {"add": ["alice"]}, 200),
        ("POST", "/api/v1/tokens", {"user": "alice", "scopes": ["read"]}, 201),
        ("POST", "/api/v1/auth/login", {"username": "root", "password": PASSWORD}, 200),
        ("POST", "/api/v1/auth/refresh", {"refresh": refresh}, 200),
        ("POST", f"/api/v1/pubsub/ct{n}/topic", {"data": {"n": n}}, 202),
    ]


@pytest.mark.usefixtures("channel_layer")
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_body_is_read_as_json_whatever_its_content_type(api, forwarded, content_type):
    User.objects.create_user(username="alice")
    assert api.post("/api/v1/groups", {"name": "ops"}, format="json").status_code == 201
    assert api.generic("PUT", "/api/v1/kv/shared/key", b"1").status_code == 201
    for method, path, body, status in body_requests(1):
        response = api.generic(method, path, orjson.dumps(body), content_type=content_type)
        assert response.status_code == status, (method, path, response.content)
    assert api.get("/api/v1/kv/ct1/key").json()["value"] == {"a": 1}
    assert api.get("/api/v1/users/alice").json()["email"] == "a1@example.com"
    assert forwarded[0]["data"] == {"n": 1}


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_an_empty_body_is_an_empty_object_whatever_its_content_type(api, content_type):
    # With a form type DRF reads an empty body as an HTML form, where a boolean left out is false.
    alice = User.objects.create_user(username="alice")
    assert_error(api.generic("PATCH", "/api/v1/users/alice", b"", content_type=content_type), 400)
    alice.refresh_from_db()
    assert alice.is_active


def test_a_body_that_is_not_json_is_400_invalid_json_whatever_its_content_type(api):
    for content_type in ("", "application/x-www-form-urlencoded", "application/json"):
        response = api.generic("POST", "/api/v1/groups", b"name=g1", content_type=content_type)
        assert assert_error(response, 400)["code"] == "invalid_json"
    assert api.get("/api/v1/groups/g1").status_code == 404


# --- DRF errors with integer keys (the list item that failed) -----------------------------------

LIST_ITEM_ERRORS = [
    pytest.param("POST", "/api/v1/groups", {"name": "g1", "members": [""]}, "members", id="group"),
    pytest.param(
        "POST", "/api/v1/users", {"username": "u1", "groups": [""]}, "groups", id="user-create"
    ),
    pytest.param("PATCH", "/api/v1/users/root", {"groups": [""]}, "groups", id="user-update"),
    pytest.param("PATCH", "/api/v1/groups/ops", {"add": [""]}, "add", id="group-update"),
    pytest.param(
        "POST", "/api/v1/tokens", {"user": "root", "scopes": [""]}, "scopes", id="token-create"
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), LIST_ITEM_ERRORS)
def test_an_error_in_a_list_item_is_400_naming_the_item(api, method, path, body, field):
    assert api.post("/api/v1/groups", {"name": "ops"}, format="json").status_code == 201
    response = api.generic(method, path, orjson.dumps(body), content_type="application/json")
    error = assert_error(response, 400)
    assert error["code"] == "invalid"
    assert list(error["errors"][field]) == ["0"]  # the first item


# --- nesting -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/groups", "/api/v1/tokens"])
def test_a_body_nested_100000_deep_is_400_at_once(api, path):
    started = time.perf_counter()
    response = api.post(path, b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert assert_error(response, 400)["code"] == "invalid_json"
    assert time.perf_counter() - started < 2.0


def test_a_schema_nested_900_deep_is_400_and_not_stored(api):
    schema = '{"items": ' * 900 + "{}" + "}" * 900
    response = api.put("/api/v1/schemas/deep/", schema, content_type="application/json")
    assert assert_error(response, 400)["code"] == "invalid_json"
    assert api.get("/api/v1/schemas/deep/").status_code == 404


def test_a_schema_at_the_depth_limit_is_checked_and_applies(api, settings):
    levels = settings.KVS_MAX_JSON_DEPTH // 2  # {"items": {...}} is two levels per step
    schema = '{"items": ' * levels + '{"type": "integer"}' + "}" * levels
    assert api.generic("PUT", "/api/v1/schemas/deep/", schema).status_code == 201
    inside = "[" * (levels - 1) + "[1]" + "]" * (levels - 1)
    assert api.generic("PUT", "/api/v1/kv/deep/ok", inside).status_code == 201
    wrong = "[" * (levels - 1) + '["x"]' + "]" * (levels - 1)
    error = assert_error(api.generic("PUT", "/api/v1/kv/deep/bad", wrong), 400)
    assert error["code"] == "schema_violation"


def test_a_schema_with_an_integer_beyond_64_bits_is_400_and_not_stored(api):
    body = b'{"type": "integer", "maximum": 123456789012345678901234567890}'
    response = api.put("/api/v1/schemas/big/", body, content_type="application/json")
    assert "64 bits" in assert_error(response, 400)["detail"]
    assert api.get("/api/v1/schemas/big/").status_code == 404


def test_an_overlong_integer_says_what_the_limit_is(api):
    response = api.put("/api/v1/kv/n", b"9" * 5000, content_type="application/json")
    detail = assert_error(response, 400)["detail"]
    assert "5000 digits" in detail and "4300" in detail and "sys." not in detail
    response = api.generic("POST", "/api/v1/users", b'{"username": ' + b"9" * 5000 + b"}")
    assert "4300" in assert_error(response, 400)["detail"]


def test_a_body_beyond_the_upload_limit_is_413_on_every_endpoint(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = orjson.dumps({"username": "u" * 200})
    assert assert_error(api.generic("POST", "/api/v1/users", body), 413)["code"] == "too_large"
    assert api.get("/api/v1/users/" + "u" * 200).status_code == 404


def test_the_browsable_api_still_renders_forms_and_errors(api, root_user, client):
    client.force_login(root_user)
    page = client.get("/api/v1/groups", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    refused = client.post(
        "/api/v1/groups", b"{", content_type="text/plain", HTTP_ACCEPT="text/html"
    )
    assert refused.status_code == 400 and b"invalid_json" in refused.content
