"""JSON Schemas per prefix: writes must validate, the 400 names the failing path."""

import pytest

from .helpers import assert_error, created, put_json, url

pytestmark = pytest.mark.django_db
USER_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
}


def put_schema(client, prefix: str, schema):
    return client.put(f"/api/v1/schemas/{prefix}", schema, format="json")


def test_values_under_the_prefix_must_satisfy_the_schema(api):
    assert put_schema(api, "users/", USER_SCHEMA).status_code == 201
    created(api, "users/ann", {"name": "Ann", "age": 3, "tags": ["a"]})
    body = assert_error(put_json(api, "users/bob", {"name": "Bob", "tags": ["ok", 7]}), 400)
    assert body["path"] == "$.tags[1]"
    assert "$.tags[1]" in body["detail"] and "users/" in body["detail"]
    assert_error(put_json(api, "users/cid", {"age": 1}), 400)  # name is required
    assert api.get(url("users/bob")).status_code == 404
    created(api, "other/x", {"age": "anything"})  # outside the prefix


def test_a_violating_replace_keeps_the_old_value(api):
    put_schema(api, "users/", USER_SCHEMA)
    version = created(api, "users/ann", {"name": "Ann"})["version"]
    assert_error(put_json(api, "users/ann", {"name": 5}), 400)
    assert api.get(url("users/ann")).json()["version"] == version


def test_every_covering_schema_applies(api):
    put_schema(api, "a/", {"type": "object"})
    put_schema(api, "a/b/", {"type": "object", "required": ["id"]})
    assert_error(put_json(api, "a/x", [1]), 400)
    assert_error(put_json(api, "a/b/x", {"no": "id"}), 400)
    created(api, "a/b/y", {"id": 1})


def test_schema_api_round_trip(api):
    assert put_schema(api, "s/", {"type": "string"}).json() == {
        "prefix": "s/",
        "schema": {"type": "string"},
    }
    assert put_schema(api, "s/", {"type": "number"}).status_code == 200
    assert api.get("/api/v1/schemas/s/").json()["schema"] == {"type": "number"}
    assert [s["prefix"] for s in api.get("/api/v1/schemas/").json()] == ["s/"]
    assert api.delete("/api/v1/schemas/s/").status_code == 204
    created(api, "s/free", "a string is fine again")
    assert_error(api.get("/api/v1/schemas/s/"), 404)
    assert_error(api.delete("/api/v1/schemas/s/"), 404)


@pytest.mark.parametrize("schema", [{"type": "nonsense"}, {"minimum": "zero"}, [1, 2], "str"])
def test_invalid_schemas_are_refused(api, schema):
    assert_error(put_schema(api, "bad/", schema), 400)
    assert api.get("/api/v1/schemas/").json() == []


def test_schema_body_must_be_json(api):
    response = api.put("/api/v1/schemas/x/", data=b"{nope", content_type="application/json")
    assert_error(response, 400)


def test_schema_changes_need_admin_acl_and_reading_needs_read(api, make_client, anon):
    put_schema(api, "s/", {"type": "object"})
    writer = make_client(scopes=["read", "write"])
    assert_error(put_schema(writer, "t/", {"type": "object"}), 403)
    assert_error(writer.delete("/api/v1/schemas/s/"), 403)
    assert writer.get("/api/v1/schemas/s/").status_code == 200
    assert_error(make_client(scopes=["write"]).get("/api/v1/schemas/s/"), 403)
    assert_error(anon.get("/api/v1/schemas/"), 401)
    assert put_schema(make_client(scopes=["admin:acl"]), "t/", {}).status_code == 201
