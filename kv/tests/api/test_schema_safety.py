"""Schemas cannot hurt the node: patterns run in linear time, references never leave the schema,
and a value's check has a bounded cost."""

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from cluster.records import record_key
from kv import services
from kv.hlc import hlc_from_ms, wall_ms
from kv.models import PrefixSchema
from kv.policy import SchemaTooCostly, value_validate
from kv.versions import Version

from .helpers import assert_error, created, put_json

pytestmark = pytest.mark.django_db


def put_schema(client, prefix: str, schema):
    return client.put(f"/api/v1/schemas/{prefix}", schema, format="json")


# --- patterns ------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_backtracking_pattern_answers_at_once(api):
    assert put_schema(api, "re/", {"type": "string", "pattern": "^(a+)+$"}).status_code == 201
    body = assert_error(put_json(api, "re/x", "a" * 40 + "!"), 400)
    assert body["code"] == "schema_violation"
    created(api, "re/y", "a" * 40)


@pytest.mark.timeout(20)
def test_backtracking_pattern_properties_answer_at_once(api):
    schema = {"type": "object", "patternProperties": {"^(a|aa)+$": {"type": "integer"}}}
    assert put_schema(api, "pp/", schema).status_code == 201
    created(api, "pp/x", {"a" * 60 + "!": "not checked", "aaaa": 1})
    assert_error(put_json(api, "pp/y", {"aaaa": "no"}), 400)


@pytest.mark.timeout(20)
def test_additional_properties_next_to_pattern_properties_answer_at_once(api):
    schema = {
        "type": "object",
        "patternProperties": {"^(x+x+)+y$": {}},
        "additionalProperties": False,
    }
    assert put_schema(api, "ap/", schema).status_code == 201
    body = assert_error(put_json(api, "ap/x", {"x" * 40: 1}), 400)
    assert "x" * 40 in body["detail"]
    created(api, "ap/y", {"xxy": 1})


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("^[a-z]+$", ["abc"], ["aBc", "", "abc\n"]),
        (r"^\d{3}-\d{4}$", ["555-1234"], ["5551234", "555-12345"]),
        ("colou?r", ["my color", "colour!"], ["colr"]),
        (r"^\p{Lu}\p{Ll}+$", ["Émile", "Zoë"], ["émile", "EMILE"]),
        ("(?i)^abc$", ["ABC", "abc"], ["abd"]),
        (r"^[^\s]+$", ["no-space"], ["a b"]),
    ],
)
def test_patterns_re2_supports_validate_as_written(api, pattern, matches, misses):
    assert put_schema(api, "p/", {"type": "string", "pattern": pattern}).status_code == 201
    for i, text in enumerate(matches):
        created(api, f"p/ok{i}", text)
    for i, text in enumerate(misses):
        body = assert_error(put_json(api, f"p/bad{i}", text), 400)
        assert body["code"] == "schema_violation" and repr(pattern) in body["detail"]


def test_pattern_properties_match_keys_by_search(api):
    schema = {
        "type": "object",
        "patternProperties": {"^n_": {"type": "number"}, "_s$": {"type": "string"}},
        "additionalProperties": False,
    }
    assert put_schema(api, "pk/", schema).status_code == 201
    created(api, "pk/a", {"n_1": 1, "x_s": "s"})
    assert_error(put_json(api, "pk/b", {"n_1": "s"}), 400)
    assert_error(put_json(api, "pk/b", {"n_s": 2}), 400)  # matches both: a number and a string
    body = assert_error(put_json(api, "pk/c", {"other": 1}), 400)
    assert "'other'" in body["detail"]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"^(a)\1$", "backreference"),
        ("^(?=a)a$", "lookaround"),
        ("^(?!a)", "lookaround"),
        ("(?<=a)b", "lookaround"),
        ("[a-", "missing ]"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_by_name(api, pattern, why):
    body = assert_error(put_schema(api, "bad/", {"type": "string", "pattern": pattern}), 400)
    assert repr(pattern) in body["detail"] and "RE2" in body["detail"]
    assert body["path"] == "$.pattern"
    assert api.get("/api/v1/schemas/").json() == []


def test_pattern_properties_keys_re2_cannot_run_are_refused(api):
    schema = {"properties": {"a": {"patternProperties": {r"(x)\1": {}}}}}
    body = assert_error(put_schema(api, "bad/", schema), 400)
    assert repr(r"(x)\1") in body["detail"]
    assert body["path"] == "$.properties.a.patternProperties"


@pytest.mark.parametrize(
    "dialect",
    [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    ],
)
@pytest.mark.timeout(20)
def test_every_dialect_matches_patterns_in_linear_time(api, dialect):
    schema = {
        "$schema": dialect,
        "type": "object",
        "properties": {"s": {"pattern": "^(a+)+$"}, "self": {"$ref": "#"}},
        "patternProperties": {"^(b+)+$": {"type": "integer"}},
    }
    assert put_schema(api, "d/", schema).status_code == 201
    assert_error(put_json(api, "d/a", {"s": "a" * 40 + "!"}), 400)
    assert_error(put_json(api, "d/b", {"self": {"s": "a" * 40 + "!"}}), 400)
    created(api, "d/c", {"s": "aaa", "b" * 40 + "!": "x", "self": {"bbb": 1}})
    assert_error(put_json(api, "d/d", {"self": {"bbb": "x"}}), 400)


@pytest.mark.parametrize(
    "dialect",
    ["http://json-schema.org/draft-03/schema#", "https://example.com/my-dialect", 5],
)
def test_other_dialects_are_refused(api, dialect):
    body = assert_error(put_schema(api, "d/", {"$schema": dialect, "type": "object"}), 400)
    assert "$schema" in body["detail"]


def test_schema_may_name_its_dialect_only_at_the_root(api):
    nested = {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": "^(a+)+$"}
    body = assert_error(put_schema(api, "d/", {"properties": {"a": nested}}), 400)
    assert body["path"] == "$.properties.a"


# --- references ----------------------------------------------------------------------------------


@pytest.fixture
def web_server() -> Iterator[dict]:
    """A loopback HTTP server that serves a schema and remembers every request it was sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}/schema.json", "seen": seen}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_web_server_fixture_answers(web_server):
    import urllib.request

    with urllib.request.urlopen(web_server["url"], timeout=5) as answer:  # noqa: S310
        assert answer.status == 200
    assert web_server["seen"] == ["/schema.json"]


@pytest.mark.parametrize(
    "where",
    [
        lambda url: {"$ref": url},
        lambda url: {"properties": {"a": {"$ref": url}}},
        lambda url: {"$defs": {"x": {"$ref": url}}, "$ref": "#/$defs/x"},
        lambda url: {"items": {"$dynamicRef": url}},
        lambda url: {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "items": {"$recursiveRef": url},
        },
        lambda url: {"$ref": "schema.json", "$id": url.rsplit("/", 1)[0] + "/"},
    ],
)
def test_remote_references_are_refused_when_stored(api, web_server, where):
    body = assert_error(put_schema(api, "r/", where(web_server["url"])), 400)
    assert "local" in body["detail"]
    assert api.get("/api/v1/schemas/").json() == []
    created(api, "r/x", "anything")
    assert web_server["seen"] == []


def test_a_stored_remote_reference_fails_closed_without_a_fetch(api, web_server):
    # As if replicated from a node that still accepted it: straight into the table.
    schema = {"properties": {"a": {"$ref": web_server["url"]}}}
    PrefixSchema.objects.create(prefix="r/", schema=schema)
    body = assert_error(put_json(api, "r/x", {"a": 1}), 400)
    assert body["code"] == "schema_unusable"
    assert "'r/'" in body["detail"] and web_server["url"] in body["detail"]
    assert_error(put_json(api, "r/y", {"b": 1}), 400)  # refused even where the ref is not reached
    assert web_server["seen"] == []


def schema_from_peer(prefix: str, schema) -> Version:
    """The replicated record of a schema, as a node that accepted it would send it."""
    return Version(
        key=record_key("schemas", prefix),
        version=uuid.uuid4(),
        hlc=hlc_from_ms(wall_ms() + 1_000),
        origin="peer-node",
        origin_joined_at=1,
        deleted=False,
        value=orjson.dumps({"prefix": prefix, "schema": schema}).decode(),
    )


@pytest.mark.timeout(20)
def test_schemas_replicated_from_a_peer_never_fetch_or_stall(
    api, web_server, django_capture_on_commit_callbacks
):
    remote = {"properties": {"a": {"$ref": web_server["url"]}}}
    backtracking = {"type": "string", "pattern": "^(a+)+$"}
    lookaround = {"type": "string", "pattern": "^(?!x)"}
    with django_capture_on_commit_callbacks(execute=True):
        services.versions_apply(
            [
                schema_from_peer("r/", remote),
                schema_from_peer("b/", backtracking),
                schema_from_peer("l/", lookaround),
            ]
        )
    assert PrefixSchema.objects.get(prefix="r/").schema == remote  # kept, so nodes agree
    assert assert_error(put_json(api, "r/x", {"a": 1}), 400)["code"] == "schema_unusable"
    assert assert_error(put_json(api, "b/x", "a" * 40 + "!"), 400)["code"] == "schema_violation"
    created(api, "b/y", "aaa")
    assert assert_error(put_json(api, "l/x", "y"), 400)["code"] == "schema_unusable"
    assert web_server["seen"] == []


def test_a_stored_unreachable_reference_is_a_400_not_a_500(api):
    PrefixSchema.objects.create(prefix="r/", schema={"$ref": "http://127.0.0.1:9/none.json"})
    body = assert_error(put_json(api, "r/x", 1), 400)
    assert body["code"] == "schema_unusable"


def test_local_references_work(api):
    schema = {
        "$defs": {"pos": {"type": "integer", "minimum": 0}},
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/pos"}, "child": {"$ref": "#"}},
    }
    assert put_schema(api, "l/", schema).status_code == 201
    created(api, "l/a", {"n": 1, "child": {"n": 2}})
    assert_error(put_json(api, "l/b", {"child": {"n": -1}}), 400)


def test_a_reference_to_nowhere_in_the_schema_is_a_400(api):
    PrefixSchema.objects.create(prefix="r/", schema={"$ref": "#/$defs/missing"})
    body = assert_error(put_json(api, "r/x", 1), 400)
    assert body["code"] == "schema_unusable" and "#/$defs/missing" in body["detail"]


def test_a_schema_cannot_take_a_metaschema_identifier(api):
    schema = {"properties": {"a": {"$id": "https://json-schema.org/draft/2020-12/schema"}}}
    body = assert_error(put_schema(api, "m/", schema), 400)
    assert "$id" in body["detail"]


# --- bounded work --------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_schema_that_refers_to_itself_without_end_is_a_400(api):
    PrefixSchema.objects.create(prefix="loop/", schema={"$ref": "#"})
    body = assert_error(put_json(api, "loop/x", 1), 400)
    assert body["code"] == "schema_unusable"
    assert put_schema(api, "loop2/", {"properties": {"a": {"$ref": "#/properties/a"}}}).status_code
    body = assert_error(put_json(api, "loop2/x", {"a": 1}), 400)
    assert body["code"] == "schema_unusable"


@pytest.mark.timeout(60)  # unmetered, this check would run for years
def test_an_exponential_check_is_cut_short(api):
    branch = {"$ref": "#/$defs/t"}
    schema = {
        "$defs": {"t": {"type": "array", "items": {"anyOf": [branch, branch, branch]}}},
        "$ref": "#/$defs/t",
    }
    assert put_schema(api, "exp/", schema).status_code == 201
    value = 1
    for _ in range(30):
        value = [value]
    body = assert_error(put_json(api, "exp/x", value), 400)
    assert body["code"] == "schema_too_costly"
    created(api, "exp/small", [[[]]])


@pytest.mark.timeout(60)
def test_the_budget_lets_a_large_value_of_a_typical_schema_through(api):
    item = {
        "type": "object",
        "required": ["name", "age"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "pattern": "^[a-z0-9]+$"},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    schema = {"type": "array", "uniqueItems": True, "items": item}
    assert put_schema(api, "big/", schema).status_code == 201
    created(api, "big/x", [{"name": f"n{i}", "age": i, "tags": ["a", "b"]} for i in range(10_000)])


@pytest.mark.timeout(20)
def test_unique_items_of_objects_take_linear_time(api):
    assert put_schema(api, "u/", {"type": "array", "uniqueItems": True}).status_code == 201
    items = [{"n": i} for i in range(20_000)]
    created(api, "u/a", items)
    body = assert_error(put_json(api, "u/b", [*items, {"n": 5}]), 400)
    assert "non-unique" in body["detail"]


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),
        ([1, True], True),
        ([0, False], True),
        ([{"a": [1, 2]}, {"a": [1, 2.0]}], False),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),
        ([[1, 2], [2, 1]], True),
        ([None, "null", {}], True),
    ],
)
def test_unique_items_follow_json_equality(api, items, unique):
    put_schema(api, "u/", {"uniqueItems": True})
    answer = put_json(api, "u/x", items)
    assert answer.status_code == (201 if unique else 400), answer.content


def test_large_schemas_are_refused(api, settings):
    settings.KVS_SCHEMA_MAX_BYTES = 1000
    big = {"properties": {f"p{i}": {"type": "string"} for i in range(100)}}
    body = assert_error(put_schema(api, "big/", big), 400)
    assert "1000" in body["detail"]
    assert put_schema(api, "small/", {"type": "object"}).status_code == 201


def test_deeply_nested_schemas_are_a_400(api):
    schema: dict = {"type": "object"}
    for _ in range(400):
        schema = {"properties": {"a": schema}}
    assert_error(put_schema(api, "deep/", schema), 400)
    schema = {"type": "object"}
    for _ in range(100):  # within what the replication records carry
        schema = {"properties": {"a": schema}}
    PrefixSchema.objects.create(prefix="deep/", schema=schema)
    assert assert_error(put_json(api, "deep/x", {}), 400)["code"] == "schema_unusable"


def test_a_value_too_deep_for_a_recursive_schema_is_a_400(api):
    assert put_schema(api, "rec/", {"properties": {"a": {"$ref": "#"}}}).status_code == 201
    value: dict = {}
    for _ in range(400):
        value = {"a": value}
    # The API refuses such a value at the door (KVS_MAX_JSON_DEPTH); the schema check refuses it
    # on its own too, e.g. for a node configured with a deeper limit.
    assert assert_error(put_json(api, "rec/x", value), 400)["code"] == "invalid_json"
    with pytest.raises(SchemaTooCostly):
        value_validate(key="rec/x", value=json.dumps(value))
    created(api, "rec/y", {"a": {"a": {}}})
