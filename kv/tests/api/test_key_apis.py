"""PUT, GET, HEAD and DELETE of single keys: status codes, shapes, raw values, TTL, cas, recurse."""

import json
import uuid

import pytest

from cluster.node import node_syncing_set
from kv import services
from kv.acl import Caller
from kv.hlc import wall_ms
from kv.models import Entry

from .helpers import (
    DEFAULT_MODE,
    assert_error,
    created,
    expire,
    put_json,
    put_raw,
    url,
)

pytestmark = pytest.mark.django_db

JSON_VALUES = [
    pytest.param({"a": 1, "b": [True, None, 2.5], "c": {"d": "e"}}, id="object"),
    pytest.param({}, id="empty-object"),
    pytest.param([1, "two", 3.0, None, False], id="array"),
    pytest.param([], id="empty-array"),
    pytest.param("hello", id="string"),
    pytest.param("", id="empty-string"),
    pytest.param(42, id="integer"),
    pytest.param(-7, id="negative"),
    pytest.param(0, id="zero"),
    pytest.param(3.25, id="float"),
    pytest.param(1e-7, id="small-float"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="null"),
    pytest.param("héllo wörld ☃ 雪 😀", id="unicode"),
    pytest.param({"ключ": ["値", '\u0000\n\t"\\']}, id="unicode-and-escapes"),
]

ROOT = Caller(username="root", superuser=True)


# --- PUT ---------------------------------------------------------------------------------------


def test_put_new_key_answers_201_with_key_version_timestamp_revision(api):
    before = wall_ms()
    response = put_raw(api, "app/config", b'{"debug": true}')
    after = wall_ms()
    assert response.status_code == 201, response.content
    body = response.json()
    assert {"key", "version", "timestamp", "revision"} <= body.keys()
    assert body["key"] == "app/config"
    assert str(uuid.UUID(body["version"])) == body["version"]
    assert before <= body["timestamp"] <= after + 1
    assert isinstance(body["revision"], int) and body["revision"] >= 1


def test_put_existing_key_answers_200_with_a_new_version_and_later_revision(api):
    first = created(api, "k", 1)
    response = put_json(api, "k", 2)
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["key"] == "k"
    assert second["version"] != first["version"]
    assert second["revision"] > first["revision"]
    assert second["timestamp"] >= first["timestamp"]


def test_put_on_deleted_key_answers_201(api):
    created(api, "k")
    assert api.delete(url("k")).status_code == 204
    assert put_json(api, "k", 2).status_code == 201


def test_put_on_expired_key_answers_201(api):
    created(api, "k", ttl="60")
    expire("k")
    response = put_json(api, "k", 2)
    assert response.status_code == 201, response.content
    assert api.get(url("k")).json()["value"] == 2


def test_put_accepts_a_body_sent_without_json_content_type(api):
    # curl -X PUT -d '...' sends application/x-www-form-urlencoded; the body is still the value.
    response = api.put(
        url("curl"), data=b'{"a": [1, 2]}', content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 201, response.content
    assert api.get(url("curl")).json()["value"] == {"a": [1, 2]}


def test_replacing_a_key_keeps_its_owner(make_client, api):
    alice = make_client(scopes=["read", "write"])
    created(alice, "shared")
    assert put_json(api, "shared", 2).status_code == 200
    assert api.get(url("shared")).json()["owner"] == "alice"


# --- GET -----------------------------------------------------------------------------------------


def test_get_answers_200_with_every_field_of_the_current_version(api):
    put = created(api, "app/config", {"debug": True})
    response = api.get(url("app/config"))
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "app/config"
    assert body["value"] == {"debug": True}
    assert body["version"] == put["version"]
    assert body["timestamp"] == put["timestamp"]
    assert body["revision"] == put["revision"]
    assert body["expires_at"] is None
    assert body["owner"] == "root"
    assert body["group"] is None
    assert body["mode"] == DEFAULT_MODE


def test_get_returns_the_latest_value_after_a_replace(api):
    created(api, "k", "old")
    second = put_json(api, "k", "new").json()
    body = api.get(url("k")).json()
    assert body["value"] == "new"
    assert body["version"] == second["version"]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_put_then_get_round_trips_every_kind_of_json_value(api, value):
    created(api, "v", value)
    response = api.get(url("v"))
    assert response.status_code == 200
    assert response.json()["value"] == value


@pytest.mark.parametrize("value", JSON_VALUES)
def test_get_raw_returns_the_value_alone(api, value):
    created(api, "v", value)
    response = api.get(url("v", raw="1"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content) == value


def test_get_raw_returns_compact_json_text(api):
    put_raw(api, "v", b'{ "a" : [ 1 , 2 ] ,\n "b" : "x" }')
    assert api.get(url("v", raw="1")).content == b'{"a":[1,2],"b":"x"}'


def test_get_null_value_answers_200_with_value_null(api):
    created(api, "nothing", None)
    response = api.get(url("nothing"))
    assert response.status_code == 200
    body = response.json()
    assert "value" in body and body["value"] is None
    assert api.get(url("nothing", raw="1")).content == b"null"
    assert api.head(url("nothing")).status_code == 200


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890123456789",  # beyond 64 bits
        "-98765432109876543210",
        "18446744073709551616",  # 2**64
        "[9223372036854775807, 18446744073709551615]",  # i64 max, u64 max
    ],
)
def test_integers_of_any_size_round_trip_exactly(api, text):
    assert put_raw(api, "big", text).status_code == 201
    assert api.get(url("big", raw="1")).content == text.replace(" ", "").encode()
    assert json.loads(api.get(url("big")).content)["value"] == json.loads(text)


def test_a_value_nested_to_the_depth_limit_round_trips(api, settings):
    body = "[" * settings.KVS_MAX_JSON_DEPTH + "]" * settings.KVS_MAX_JSON_DEPTH
    assert put_raw(api, "deep", body).status_code == 201
    assert api.get(url("deep", raw="1")).content == body.encode()
    deeper = "[" + body + "]"
    assert assert_error(put_raw(api, "deep", deeper), 400)["code"] == "invalid_json"


def test_a_higher_depth_limit_takes_values_beyond_what_orjson_encodes(api, settings):
    settings.KVS_MAX_JSON_DEPTH = 300  # orjson's encoder stops at 255 levels
    body = "[" * 300 + "]" * 300
    assert put_raw(api, "deep", body).status_code == 201
    assert api.get(url("deep", raw="1")).content == body.encode()


def test_unicode_key_round_trips(api):
    key = "ключ/値/😀 space"
    assert created(api, key, "v")["key"] == key
    body = api.get(url(key)).json()
    assert body["key"] == key and body["value"] == "v"


def test_get_absent_key_is_404(api):
    assert_error(api.get(url("never/was")), 404)
    assert_error(api.get(url("never/was", raw="1")), 404)


def test_get_deleted_key_is_404(api):
    created(api, "k")
    assert api.delete(url("k")).status_code == 204
    assert_error(api.get(url("k")), 404)


def test_get_expired_key_is_404_before_the_expiry_task_runs(api):
    created(api, "k", ttl="60")
    assert api.get(url("k")).status_code == 200
    expire("k")
    assert_error(api.get(url("k")), 404)
    assert_error(api.get(url("k", raw="1")), 404)
    assert Entry.objects.get(key="k").deleted is False  # hidden, not yet tombstoned


def test_key_written_with_a_ttl_in_the_past_is_not_visible(api):
    services.entry_put(
        key="old",
        value='"x"',
        caller=ROOT,
        ttl=5,
        now=wall_ms() - 10_000,
    )
    assert_error(api.get(url("old")), 404)
    assert api.head(url("old")).status_code == 404


def test_get_of_a_parent_path_does_not_return_a_child(api):
    created(api, "a/b")
    assert api.get(url("a")).status_code == 404


# --- HEAD ----------------------------------------------------------------------------------------


def test_head_existing_key_answers_200_without_body(api):
    created(api, "k", {"big": "value"})
    response = api.head(url("k"))
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("state", ["absent", "deleted", "expired"])
def test_head_missing_key_answers_404_without_body(api, state):
    if state != "absent":
        created(api, "k", ttl="60")
        if state == "deleted":
            assert api.delete(url("k")).status_code == 204
        else:
            expire("k")
    response = api.head(url("k"))
    assert response.status_code == 404
    assert response.content == b""


# --- TTL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1", 1)]
)
def test_put_with_ttl_sets_expires_at_ttl_after_the_write(api, ttl, seconds):
    put = created(api, "k", ttl=ttl)
    body = api.get(url("k")).json()
    assert body["expires_at"] is not None
    assert abs(body["expires_at"] - (put["timestamp"] + seconds * 1000)) < 1000
    assert body["value"] == 1


def test_put_answer_reports_the_expiry(api):
    put = created(api, "k", ttl="5m")
    assert put["expires_at"] == api.get(url("k")).json()["expires_at"]


def test_put_without_ttl_clears_a_previous_expiry(api):
    created(api, "k", ttl="5m")
    assert put_json(api, "k", 2).status_code == 200
    assert api.get(url("k")).json()["expires_at"] is None


def test_put_with_a_new_ttl_replaces_the_expiry(api):
    created(api, "k", ttl="2h")
    first = api.get(url("k")).json()["expires_at"]
    assert put_json(api, "k", 2, ttl="90").status_code == 200
    second = api.get(url("k")).json()["expires_at"]
    assert first - second > 3_000_000  # ~2h - 90s earlier


def test_key_with_ttl_is_readable_until_it_expires(api):
    now = wall_ms()
    services.entry_put(key="k", value="1", caller=ROOT, ttl=60, now=now)
    assert api.get(url("k")).status_code == 200
    assert api.head(url("k")).status_code == 200
    Entry.objects.filter(key="k").update(expires_at=now - 1)
    assert api.get(url("k")).status_code == 404
    assert api.head(url("k")).status_code == 404


# --- cas -----------------------------------------------------------------------------------------


def test_put_with_matching_cas_replaces(api):
    version = created(api, "k", "old")["version"]
    response = put_json(api, "k", "new", cas=version)
    assert response.status_code == 200, response.content
    assert api.get(url("k")).json()["value"] == "new"


def test_put_with_matching_uppercase_cas_replaces(api):
    version = created(api, "k", "old")["version"]
    assert put_json(api, "k", "new", cas=version.upper()).status_code == 200


def test_put_with_stale_cas_conflicts(api):
    stale = created(api, "k", "v1")["version"]
    current = put_json(api, "k", "v2").json()["version"]
    body = assert_error(put_json(api, "k", "v3", cas=stale), 409)
    assert body.get("version") == current
    got = api.get(url("k")).json()
    assert got["value"] == "v2" and got["version"] == current


def test_put_with_cas_on_absent_key_conflicts(api):
    assert_error(put_json(api, "k", 1, cas=str(uuid.uuid4())), 409)
    assert api.get(url("k")).status_code == 404


def test_put_with_cas_of_a_deleted_version_conflicts(api):
    version = created(api, "k")["version"]
    assert api.delete(url("k")).status_code == 204
    assert_error(put_json(api, "k", 2, cas=version), 409)
    assert api.get(url("k")).status_code == 404


def test_put_with_cas_of_an_expired_version_conflicts(api):
    version = created(api, "k", ttl="60")["version"]
    expire("k")
    assert_error(put_json(api, "k", 2, cas=version), 409)
    assert api.get(url("k")).status_code == 404


def test_put_with_cas_zero_creates_an_absent_key(api):
    response = put_json(api, "k", "first", cas="0")
    assert response.status_code == 201, response.content
    assert api.get(url("k")).json()["value"] == "first"


def test_put_with_cas_zero_on_existing_key_conflicts(api):
    version = created(api, "k", "first")["version"]
    assert_error(put_json(api, "k", "second", cas="0"), 409)
    got = api.get(url("k")).json()
    assert got["value"] == "first" and got["version"] == version


@pytest.mark.parametrize("state", ["deleted", "expired"])
def test_put_with_cas_zero_on_a_gone_key_creates_it(api, state):
    created(api, "k", "first", ttl="60")
    if state == "deleted":
        assert api.delete(url("k")).status_code == 204
    else:
        expire("k")
    assert put_json(api, "k", "again", cas="0").status_code == 201
    assert api.get(url("k")).json()["value"] == "again"


def test_only_one_of_two_cas_zero_creators_wins(api):
    assert put_json(api, "lock", "a", cas="0").status_code == 201
    assert put_json(api, "lock", "b", cas="0").status_code == 409
    assert api.get(url("lock")).json()["value"] == "a"


# --- DELETE --------------------------------------------------------------------------------------


def test_delete_existing_key_answers_204_and_the_key_is_gone(api):
    created(api, "k")
    response = api.delete(url("k"))
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(url("k")).status_code == 404
    assert api.head(url("k")).status_code == 404


def test_delete_absent_key_is_404(api):
    assert_error(api.delete(url("never")), 404)


def test_delete_twice_answers_404_the_second_time(api):
    created(api, "k")
    assert api.delete(url("k")).status_code == 204
    assert_error(api.delete(url("k")), 404)


def test_delete_expired_key_is_404(api):
    created(api, "k", ttl="60")
    expire("k")
    assert_error(api.delete(url("k")), 404)


def test_delete_with_matching_cas_answers_204(api):
    version = created(api, "k")["version"]
    assert api.delete(url("k", cas=version)).status_code == 204
    assert api.get(url("k")).status_code == 404


def test_delete_with_stale_cas_conflicts_and_keeps_the_key(api):
    stale = created(api, "k", "v1")["version"]
    current = put_json(api, "k", "v2").json()["version"]
    body = assert_error(api.delete(url("k", cas=stale)), 409)
    assert body.get("version") == current
    assert api.get(url("k")).json()["version"] == current


def test_delete_of_a_parent_path_leaves_children_alone(api):
    created(api, "a/b")
    assert api.delete(url("a")).status_code == 404
    assert api.get(url("a/b")).status_code == 200


# --- DELETE ?recurse=1 ---------------------------------------------------------------------------

TREE = ["a", "a/b", "a/b/c", "a/c", "a.b", "a0", "aX", "ab", "b", "b/a"]


def test_delete_recurse_deletes_the_key_and_everything_under_it(api):
    for key in TREE:
        created(api, key)
    response = api.delete(url("a", recurse="1"))
    assert response.status_code == 200, response.content
    assert response.json() == {"deleted": 4}
    for key in ["a", "a/b", "a/b/c", "a/c"]:
        assert api.get(url(key)).status_code == 404, key
    for key in ["a.b", "a0", "aX", "ab", "b", "b/a"]:  # keyX is not under key/
        assert api.get(url(key)).status_code == 200, key


def test_delete_recurse_of_an_inner_path_keeps_siblings_and_parent(api):
    for key in TREE:
        created(api, key)
    assert api.delete(url("a/b", recurse="1")).json() == {"deleted": 2}
    for key in ["a", "a/c"]:
        assert api.get(url(key)).status_code == 200, key


def test_delete_recurse_works_when_only_children_exist(api):
    created(api, "dir/x")
    created(api, "dir/y/z")
    response = api.delete(url("dir", recurse="1"))
    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    assert api.get(url("dir/x")).status_code == 404


def test_delete_recurse_counts_live_keys_only(api):
    for key in ["d", "d/live", "d/gone", "d/expired"]:
        created(api, key, ttl="60")
    assert api.delete(url("d/gone")).status_code == 204
    expire("d/expired")
    assert api.delete(url("d", recurse="1")).json() == {"deleted": 2}


def test_delete_recurse_of_nothing_answers_200_with_zero(api):
    # Like etcd's DeleteRange: an empty range is not an error.
    response = api.delete(url("nothing/here", recurse="1"))
    assert response.status_code == 200
    assert response.json() == {"deleted": 0}


def test_delete_recurse_zero_is_a_plain_delete(api):
    created(api, "a")
    created(api, "a/b")
    assert api.delete(url("a", recurse="0")).status_code == 204
    assert api.get(url("a/b")).status_code == 200


def test_delete_recurse_with_cas_is_refused_and_deletes_nothing(api):
    version = created(api, "a")["version"]
    created(api, "a/b")
    assert_error(api.delete(url("a", recurse="1", cas=version)), 400)
    assert api.get(url("a")).status_code == 200
    assert api.get(url("a/b")).status_code == 200


# --- syncing node --------------------------------------------------------------------------------


def test_writes_on_a_syncing_node_answer_503_and_reads_still_work(api):
    created(api, "k", "v")
    node_syncing_set(True)
    assert assert_error(put_json(api, "k", "w"), 503).get("mode") == "syncing"
    assert assert_error(put_json(api, "new", 1), 503).get("mode") == "syncing"
    assert assert_error(api.delete(url("k")), 503).get("mode") == "syncing"
    assert_error(api.delete(url("k", recurse="1")), 503)
    assert api.get(url("k")).json()["value"] == "v"
    assert api.get(url("new")).status_code == 404
