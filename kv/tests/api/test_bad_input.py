"""Malformed keys, bodies and parameters: each answers a 4xx JSON error and changes nothing."""

import base64
import json

import pytest

from kv.models import Entry

from .helpers import (
    asgi_request,
    assert_error,
    created,
    list_url,
    node_status,
    put_json,
    put_raw,
    url,
)

pytestmark = pytest.mark.django_db

GOOD_VALUE = {"v": 1}


class Store:
    """A store holding `good` (and `good/child`); asserts that a refused request moved nothing."""

    def __init__(self, api):
        self.api = api
        self.version = created(api, "good", GOOD_VALUE)["version"]
        created(api, "good/child")
        self.revision = node_status(api)["revision"]
        self.rows = sorted(Entry.objects.values_list("key", "version", "deleted"))

    def assert_unchanged(self):
        got = self.api.get(url("good"))
        assert got.status_code == 200
        assert got.json()["version"] == self.version
        assert got.json()["value"] == GOOD_VALUE
        assert node_status(self.api)["revision"] == self.revision
        assert sorted(Entry.objects.values_list("key", "version", "deleted")) == self.rows


@pytest.fixture
def store(api) -> Store:
    return Store(api)


# --- keys ----------------------------------------------------------------------------------------

BAD_KEYS = [
    pytest.param("/lead", id="leading-slash"),
    pytest.param("trail/", id="trailing-slash"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("./a", id="dot-first"),
    pytest.param("a/./b", id="dot-segment"),
    pytest.param("a/../b", id="dotdot-segment"),
    pytest.param("a/..", id="dotdot-last"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\x01b", id="soh"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\rb", id="carriage-return"),
    pytest.param("a\x1fb", id="unit-separator"),
    pytest.param("a\x7fb", id="del"),
    pytest.param("a\x85b", id="c1-next-line"),
    pytest.param("x" * 1025, id="1025-ascii-bytes"),
    pytest.param("é" * 513, id="513-two-byte-chars"),
    pytest.param("€" * 342, id="342-three-byte-chars"),
    pytest.param("😀" * 257, id="257-four-byte-chars"),
    pytest.param("a/" + "é" * 512, id="1026-bytes-in-514-chars"),
    pytest.param("_x", id="reserved"),
    pytest.param("_x/y", id="reserved-dir"),
    pytest.param("_", id="underscore"),
    pytest.param("pay\u202egpj.exe", id="right-to-left-override"),
    pytest.param("a\u200bb", id="zero-width-space"),
    pytest.param("\ufeffa", id="byte-order-mark"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param("al/\ufffd\ufffd", id="replacement-characters"),
]


def key_requests(client, key: str):
    """Every key-taking request of the API, for `key`."""
    meta, hist = "/api/v1/meta/", "/api/v1/history/"
    yield "PUT", put_json(client, key, 1)
    yield "PUT cas=0", put_json(client, key, 1, cas="0")
    yield "GET", client.get(url(key))
    yield "GET raw", client.get(url(key, raw="1"))
    yield "HEAD", client.head(url(key))
    yield "DELETE", client.delete(url(key))
    yield "DELETE recurse", client.delete(url(key, recurse="1"))
    yield "history", client.get(url(key, base=hist))
    yield "meta GET", client.get(url(key, base=meta))
    yield "meta PUT", client.put(url(key, base=meta), data={"mode": 0}, format="json")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_malformed_key_is_400_on_every_key_request(store, key):
    for what, response in key_requests(store.api, key):
        assert response.status_code == 400, (what, response.content)
        if what != "HEAD":
            assert_error(response, 400)
    store.assert_unchanged()


def test_nul_given_as_percent_00_in_the_url_is_400(store):
    assert_error(store.api.put("/api/v1/kv/a%00b", data=b"1", content_type="application/json"), 400)
    assert_error(store.api.get("/api/v1/kv/good%00"), 400)
    assert_error(store.api.delete("/api/v1/kv/good%00?recurse=1"), 400)
    store.assert_unchanged()


@pytest.mark.parametrize("app", ["bridge", "django-asgi"])
def test_keys_that_are_not_utf8_are_400_and_never_alias(store, settings, app):
    # Both paths reach Django as "al/\ufffd\ufffd" (uvicorn decodes with replacement): one
    # key would have stood for every byte string that is not UTF-8.
    from kvsite.asgi import django_asgi_app

    settings.KVS_AUTH_ENABLED = False
    application = django_asgi_app if app == "django-asgi" else None
    refusals = [
        ("PUT", "/api/v1/kv/al/%FF%FE", b"1", (True, False)),  # refused on the bytes, and
        ("GET", "/api/v1/kv/al/%C0%80", b"", (True, False)),  # without them on the U+FFFD
        ("POST", "/api/v1/pubsub/al/%FF", b'{"data": 1}', (True, False)),
        ("PUT", "/api/v1/acl/al/%FF/", b'{"mode": 0}', (True,)),
        ("PUT", "/api/v1/schemas/%FF/", b"{}", (True,)),
    ]
    for method, path, sent, raws in refusals:
        for raw in raws:
            status, body = asgi_request(method, path, sent, app=application, raw=raw)
            assert (status, body["code"]) == (400, "invalid_key"), (method, path, raw, body)
    status, body = asgi_request("GET", "/api/v1/users/%FF", app=application)
    assert (status, body["code"]) == (400, "invalid")
    assert not Entry.objects.filter(key__startswith="al/").exists()
    store.assert_unchanged()


def test_a_percent_sign_in_a_key_is_the_key_itself(store):
    assert created(store.api, "al/%FF")["key"] == "al/%FF"  # sent as al/%25FF
    assert store.api.get(url("al/%FF")).status_code == 200
    assert store.api.get(url("al/\ufffd")).status_code == 400


def test_a_listing_prefix_that_is_not_utf8_is_400(store):
    for query in ("prefix=al%2F%FF", "prefix=%C0%80&separator=/"):
        response = store.api.get(f"/api/v1/kv/?{query}")
        assert assert_error(response, 400)["code"] == "invalid_key"
    store.assert_unchanged()


GOOD_KEYS = [
    pytest.param("x" * 1024, id="1024-ascii-bytes"),
    pytest.param("é" * 512, id="512-two-byte-chars"),
    pytest.param("€" * 341 + "x", id="1024-bytes-of-three-byte-chars"),
    pytest.param("😀" * 256, id="256-four-byte-chars"),
    pytest.param("a/_x", id="underscore-below-the-first-segment"),
    pytest.param("x_", id="underscore-not-first"),
    pytest.param("a.b", id="dot-inside"),
    pytest.param("...", id="three-dots"),
    pytest.param("a/.../b", id="three-dot-segment"),
    pytest.param(".hidden/..x", id="dot-prefixed-names"),
    pytest.param("a b/c d", id="spaces"),
    pytest.param("a%b", id="percent"),
    pytest.param("a?b=c#d", id="query-and-fragment-characters"),
    pytest.param("a+b&c;d", id="punctuation"),
    pytest.param("ü/ñ/雪", id="unicode"),
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_keys_at_the_edges_of_the_rules_are_accepted(api, key):
    response = put_json(api, key, "ok")
    assert response.status_code == 201, response.content
    assert response.json()["key"] == key
    got = api.get(url(key)).json()
    assert (got["key"], got["value"]) == (key, "ok")
    assert api.delete(url(key)).status_code == 204


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("/a", id="leading-slash"),
        pytest.param("a//", id="empty-segment"),
        pytest.param("a/../", id="dotdot"),
        pytest.param("_x", id="reserved"),
        pytest.param("a\x00", id="nul"),
        pytest.param("a\nb", id="newline"),
        pytest.param("x" * 1025, id="too-long"),
    ],
)
def test_malformed_list_prefix_is_400(store, prefix):
    assert_error(store.api.get(list_url(prefix=prefix)), 400)
    assert_error(store.api.get(list_url(prefix=prefix, separator="/")), 400)
    store.assert_unchanged()


# --- bodies --------------------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b'{"a": 1', id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b"  \n\t ", id="whitespace"),
    pytest.param(b"NaN", id="nan"),
    pytest.param(b'{"a": NaN}', id="nan-inside"),
    pytest.param(b"Infinity", id="infinity"),
    pytest.param(b"[-Infinity]", id="minus-infinity"),
    pytest.param(b"1e400", id="overflowing-number"),
    pytest.param(b'{"x": [-1E999]}', id="overflowing-number-inside"),
    pytest.param(b'"\\ud800"', id="lone-high-surrogate"),
    pytest.param(b'{"k": "a\\udc00b"}', id="lone-low-surrogate"),
    pytest.param(b"[1,]", id="trailing-comma"),
    pytest.param(b"{'a': 1}", id="single-quotes"),
    pytest.param(b"{a: 1}", id="bare-name"),
    pytest.param(b"undefined", id="undefined"),
    pytest.param(b"tru", id="truncated-literal"),
    pytest.param(b'"unterminated', id="unterminated-string"),
    pytest.param(b'{"a":1} {"b":2}', id="two-values"),
    pytest.param(b"1 2", id="two-numbers"),
    pytest.param(b"// comment\n1", id="comment"),
    pytest.param(b"0x10", id="hex"),
    pytest.param(b"01", id="leading-zero"),
    pytest.param(b"\xff\xfe\xfd", id="not-utf8"),
    pytest.param(b'"\xc3"', id="truncated-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-too-deeply"),
    pytest.param(b"9" * 5000, id="integer-beyond-parser-limit"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_json_body_is_400_and_changes_nothing(store, body):
    assert_error(put_raw(store.api, "good", body), 400)
    assert_error(put_raw(store.api, "fresh", body), 400)
    assert_error(put_raw(store.api, "fresh", body, cas="0"), 400)
    assert store.api.get(url("fresh")).status_code == 404
    store.assert_unchanged()


# --- ttl and cas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ttl",
    ["0", "0s", "0m", "-5", "5x", "abc", "", "1.5", "5 m", "5M", "1e3", "9" * 13, "99999999d"],
)
def test_bad_ttl_is_400_and_changes_nothing(store, ttl):
    assert_error(put_json(store.api, "good", 2, ttl=ttl), 400)
    assert_error(put_json(store.api, "fresh", 2, ttl=ttl), 400)
    assert store.api.get(url("fresh")).status_code == 404
    assert store.api.get(url("good")).json()["expires_at"] is None
    store.assert_unchanged()


@pytest.mark.parametrize("cas", ["abc", "123", "", "00", "-1", "not-a-uuid", "1234-5678"])
def test_bad_cas_is_400_and_changes_nothing(store, cas):
    assert_error(put_json(store.api, "good", 2, cas=cas), 400)
    assert_error(put_json(store.api, "fresh", 2, cas=cas), 400)
    assert_error(store.api.delete(url("good", cas=cas)), 400)
    assert_error(store.api.delete(url("absent", cas=cas)), 400)
    assert store.api.get(url("fresh")).status_code == 404
    store.assert_unchanged()


def test_cas_zero_on_delete_is_400(store):
    assert_error(store.api.delete(url("good", cas="0")), 400)
    store.assert_unchanged()


# --- flags, limit, cursor, separator -------------------------------------------------------------


@pytest.mark.parametrize("flag", ["maybe", "2", "yess", "-1", "truee"])
def test_bad_flag_values_are_400_and_change_nothing(store, flag):
    assert_error(store.api.get(url("good", raw=flag)), 400)
    assert_error(store.api.get(list_url(prefix="good", keys=flag)), 400)
    assert_error(store.api.delete(url("good", recurse=flag)), 400)
    assert store.api.get(url("good/child")).status_code == 200
    store.assert_unchanged()


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "1001", "1.5", "1e3", " ", "10x"])
def test_bad_limit_is_400(store, limit):
    assert_error(store.api.get(list_url(limit=limit)), 400)
    store.assert_unchanged()


def test_limit_at_its_maximum_is_accepted(store):
    assert store.api.get(list_url(limit="1000")).status_code == 200


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("a", id="one-char"),
        pytest.param(_b64("no-colon"), id="no-kind"),
        pytest.param(_b64("x:good"), id="unknown-kind"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe:x").decode(), id="not-utf8"),
        pytest.param("é", id="not-ascii"),
        pytest.param("a\x00", id="nul"),
    ],
)
def test_bad_cursor_is_400(store, cursor):
    assert_error(store.api.get(list_url(cursor=cursor)), 400)
    assert_error(store.api.get(list_url(cursor=cursor, separator="/")), 400)
    store.assert_unchanged()


def test_empty_separator_is_400(store):
    assert_error(store.api.get(list_url(separator="")), 400)


# --- size ----------------------------------------------------------------------------------------


def test_value_larger_than_kvs_max_value_bytes_is_413_and_changes_nothing(store, settings):
    settings.KVS_MAX_VALUE_BYTES = 64
    too_big = json.dumps("x" * 100).encode()
    assert_error(put_raw(store.api, "good", too_big), 413)
    assert_error(put_raw(store.api, "fresh", too_big), 413)
    assert store.api.get(url("fresh")).status_code == 404
    store.assert_unchanged()


def test_value_of_exactly_kvs_max_value_bytes_is_accepted(api, settings):
    settings.KVS_MAX_VALUE_BYTES = 64
    body = json.dumps("x" * 62).encode()
    assert len(body) == 64
    assert put_raw(api, "k", body).status_code == 201
    assert put_raw(api, "k", json.dumps("x" * 63)).status_code == 413
    assert api.get(url("k")).json()["value"] == "x" * 62


def test_multibyte_value_size_is_counted_in_bytes(store, settings):
    settings.KVS_MAX_VALUE_BYTES = 64
    body = json.dumps("é" * 40, ensure_ascii=False).encode()  # 40 chars, 82 bytes
    assert_error(put_raw(store.api, "fresh", body), 413)
    store.assert_unchanged()


def test_body_beyond_the_upload_limit_is_413_json(store, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert_error(put_raw(store.api, "good", json.dumps("x" * 200)), 413)
    store.assert_unchanged()


# --- methods -------------------------------------------------------------------------------------


def test_unsupported_methods_are_405_json(store):
    assert_error(store.api.post(url("good"), data=b"1", content_type="application/json"), 405)
    assert_error(store.api.patch("/api/v1/kv/", data=b"1", content_type="application/json"), 405)
    assert_error(store.api.put("/api/v1/kv/", data=b"1", content_type="application/json"), 405)
    assert_error(store.api.delete("/api/v1/kv/"), 405)
    store.assert_unchanged()
