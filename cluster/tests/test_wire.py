"""What peers send is checked as strictly as client input: the signed internal endpoints answer a
bad message 400 (naming the item and field) and apply nothing of it."""

import json
import time
import uuid

import orjson
import pytest

from cluster.antientropy import DIGESTS_PATH, MERKLE_PATH, VERSIONS_PATH, merkle_sync
from cluster.gossip import FORGET_PATH
from cluster.models import Member
from cluster.node import local_node
from cluster.records import record_key
from cluster.signing import sign_request
from cluster.transport import TransportError
from cluster.wire import key_check, version_parse
from kv import selectors, services
from kv.hlc import hlc_from_ms, wall_ms
from kv.merkle import bucket_of
from kv.models import Entry
from kv.versions import Version, expiry_tombstone

pytestmark = pytest.mark.django_db
SECRET = "wire-secret-0123456789abcdef"


@pytest.fixture
def node(settings):
    """This node, with `peer` as an alive member (the endpoints answer members only)."""
    settings.KVS_CLUSTER_SECRET = SECRET
    Member.objects.create(node_id="peer", url="http://peer.test", joined_at=1)
    return local_node()


def post(client, path: str, payload, *, target: str | None = None):
    # The standard library's encoder: it writes integers beyond 64 bits, as a peer might.
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = sign_request(
        SECRET,
        node_id="peer",
        target=target or local_node().node_id,
        method="POST",
        path=path,
        body=body,
        now=wall_ms(),
    )
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic("POST", path, body, content_type="application/json", **extra)


def wire(key: str = "k", /, **changes) -> dict:
    v = Version(key, uuid.uuid4(), hlc_from_ms(wall_ms()), "peer", 1, value='{"x":1}')
    return {**v.as_wire(), **changes}


def stored_keys() -> set[str]:
    return set(Entry.objects.exclude(key__startswith="_").values_list("key", flat=True))


# --- versions ------------------------------------------------------------------------------------

BAD_VERSIONS = {
    "non-JSON value": ({"value": "{not json"}, "value"),
    "value of a wrong type": ({"value": {"x": 1}}, "value"),
    "live version without a value": ({"value": None}, "value"),
    "tombstone with a value": ({"deleted": True}, "value"),
    "mode 99999": ({"mode": 99999}, "mode"),
    "negative mode": ({"mode": -1}, "mode"),
    "mode true": ({"mode": True}, "mode"),
    "hlc 2^70": ({"hlc": 2**70}, "hlc"),
    "hlc 2^63": ({"hlc": 2**63}, "hlc"),
    "hlc as text": ({"hlc": "12"}, "hlc"),
    "hlc a float": ({"hlc": 1.5}, "hlc"),
    "joined_at 2^64": ({"origin_joined_at": 2**64}, "origin_joined_at"),
    "expires_at negative": ({"expires_at": -5}, "expires_at"),
    "bad UUID": ({"version": "not-a-uuid"}, "version"),
    "UUID not canonical": ({"version": "{" + str(uuid.uuid4()).upper() + "}"}, "version"),
    "bad key": ({"key": "a//b"}, "key"),
    "key with a control character": ({"key": "a\x07b"}, "key"),
    "key of a number": ({"key": 5}, "key"),
    "reserved key": ({"key": "_secret/x"}, "key"),
    "unknown record kind": ({"key": "_sys/passwords/root"}, "key"),
    "record name encoded otherwise": ({"key": "_sys/acl/team/"}, "key"),
    "empty origin": ({"origin": ""}, "origin"),
    "origin too long": ({"origin": "n" * 65}, "origin"),
    "owner too long": ({"owner": "o" * 151}, "owner"),
    "group a number": ({"group": 7}, "group"),
    "deleted as text": ({"deleted": "yes"}, "deleted"),
    "unknown field": ({"colour": "red"}, "colour"),
    "actor too long": ({"actor": "a" * 151}, "actor"),
    "actor a number": ({"actor": 7}, "actor"),
    "actor a list": ({"actor": ["alice"]}, "actor"),
}


@pytest.mark.parametrize("bad", BAD_VERSIONS, ids=list(BAD_VERSIONS))
def test_a_bad_version_gets_400_naming_it_and_nothing_of_the_batch_is_stored(client, node, bad):
    changes, field = BAD_VERSIONS[bad]
    before = selectors.store_state()
    batch = [wire("good/first"), wire("good/second", **changes), wire("good/third")]
    response = post(client, VERSIONS_PATH, {"versions": batch})
    assert response.status_code == 400, response.content
    error = response.json()
    assert (error["index"], error["field"]) == (1, field)
    assert f"versions[1].{field}" in error["detail"] and error["code"] == "invalid"
    assert stored_keys() == set()
    after = selectors.store_state()
    assert (after.revision, after.merkle_root) == (before.revision, before.merkle_root)


def test_a_missing_field_is_named(client, node):
    version = wire()
    del version["mode"]
    response = post(client, VERSIONS_PATH, {"versions": [version]})
    assert response.status_code == 400
    assert (response.json()["index"], response.json()["field"]) == (0, "mode")
    assert stored_keys() == set()


def test_the_actor_replicates_and_may_be_null(client, node):
    batch = [wire("by/alice", actor="alice"), wire("by/nobody", actor=None)]
    assert post(client, VERSIONS_PATH, {"versions": batch}).status_code == 200
    assert Entry.objects.get(key="by/alice").actor == "alice"
    assert Entry.objects.get(key="by/nobody").actor is None


def test_a_version_without_an_actor_from_an_earlier_release_shows_unknown(client, node):
    old = wire("old/write")
    del old["actor"]
    expired = Version("old/expired", uuid.uuid4(), hlc_from_ms(wall_ms()), "peer", 1)
    tombstone = expiry_tombstone(expired).as_wire()
    del tombstone["actor"]
    assert post(client, VERSIONS_PATH, {"versions": [old, tombstone]}).status_code == 200
    assert Entry.objects.get(key="old/write").actor == "unknown"
    assert Entry.objects.get(key="old/expired").actor is None  # an expiry has no writer


def test_versions_sent_to_peers_carry_the_actor():
    v = Version("k", uuid.uuid4(), 5, "n1", 1, value="1", actor="alice")
    assert v.as_wire()["actor"] == "alice"
    assert version_parse(v.as_wire()) == v


def test_an_oversized_value_gets_400_and_is_not_stored(client, node, settings):
    settings.KVS_MAX_VALUE_BYTES = 1000
    big = orjson.dumps("x" * 1000).decode()
    response = post(client, VERSIONS_PATH, {"versions": [wire("big", value=big)]})
    assert response.status_code == 400 and response.json()["field"] == "value"
    assert "bytes" in response.json()["detail"]
    fits = orjson.dumps("x" * 998).decode()
    assert post(client, VERSIONS_PATH, {"versions": [wire("fits", value=fits)]}).status_code == 200
    assert stored_keys() == {"fits"}


def test_a_value_nested_too_deeply_gets_400(client, node):
    deep = "[" * 1025 + "]" * 1025
    response = post(client, VERSIONS_PATH, {"versions": [wire(value=deep)]})
    assert response.status_code == 400 and response.json()["field"] == "value"
    assert stored_keys() == set()


def test_what_clients_may_store_peers_accept(client, node):
    # Integers beyond 64 bits and deep nesting pass the key API (its exact parser); peers take
    # them too, or one such value would stop replication to every peer.
    values = {
        "big-int": "123456789012345678901234567890",
        "beyond-a-double": "1" + "0" * 400,  # an integer; as a float it would be infinite
        "deep": "[" * 900 + "]" * 900,  # stored before KVS_MAX_JSON_DEPTH
    }
    batch = [wire(key, value=value) for key, value in values.items()]
    batch.append(wire("gone", deleted=True, value=None))
    response = post(client, VERSIONS_PATH, {"versions": batch})
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content) == {"applied": 4}
    assert {k: Entry.objects.get(key=k).value for k in values} == values


def test_a_bad_system_record_gets_400_and_is_not_materialized(client, node):
    from accounts.models import User

    record = {"username": "eve", "is_superuser": "yes"}
    batch = [wire(record_key("users", "eve"), value=orjson.dumps(record).decode())]
    response = post(client, VERSIONS_PATH, {"versions": batch})
    assert response.status_code == 400 and response.json()["field"] == "value"
    assert not User.objects.filter(username="eve").exists()
    rule = {"prefix": "x/", "owner": None, "group": None, "mode": 99999}
    batch = [wire(record_key("acl", "x/"), value=orjson.dumps(rule).decode())]
    assert post(client, VERSIONS_PATH, {"versions": batch}).status_code == 400
    assert not Entry.objects.filter(key__startswith="_sys/acl").exists()


@pytest.mark.parametrize(
    "body",
    [b"[1]", b'{"versions": "no"}', b'{"versions": [], "more": 1}', b"{bad", b'{"versions": [7]}'],
)
def test_a_malformed_versions_message_gets_400_json(client, node, body):
    response = post(client, VERSIONS_PATH, body)
    assert response.status_code == 400
    assert "detail" in response.json() and "code" in response.json()


def test_a_valid_batch_is_still_applied(client, node):
    response = post(client, VERSIONS_PATH, {"versions": [wire("a"), wire("b", mode=0o7777)]})
    assert response.status_code == 200 and orjson.loads(response.content) == {"applied": 2}
    assert stored_keys() == {"a", "b"}


# --- merkle and digests --------------------------------------------------------------------------


def test_a_merkle_request_for_20000_nodes_gets_400_at_once(client, node):
    started = time.monotonic()
    response = post(client, MERKLE_PATH, {"level": 3, "nodes": list(range(20_000))})
    elapsed = time.monotonic() - started
    assert response.status_code == 400 and response.json()["field"] == "nodes"
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    for level, nodes in ((0, [0] * 20_000), (2, [3] * 2), (1, [16]), (1, [])):
        response = post(client, MERKLE_PATH, {"level": level, "nodes": nodes})
        assert response.status_code == 400, (level, nodes[:3])


def test_the_largest_merkle_request_a_walk_makes_is_answered(client, node):
    response = post(client, MERKLE_PATH, {"level": 3, "nodes": list(range(4096))})
    assert response.status_code == 200
    assert len(orjson.loads(response.content)["hashes"]) == 4096


def test_a_digests_request_beyond_256_buckets_or_outside_them_gets_400(client, node):
    too_many = post(client, DIGESTS_PATH, {"buckets": list(range(257)), "digests": []})
    assert too_many.status_code == 400 and too_many.json()["field"] == "buckets"
    assert (
        post(client, DIGESTS_PATH, {"buckets": list(range(256)), "digests": []}).status_code == 200
    )
    for buckets in ([4096], [1, 1], [-1], ["1"]):
        assert post(client, DIGESTS_PATH, {"buckets": buckets, "digests": []}).status_code == 400
    v = wire("a")
    digest = ["a", v["version"], v["hlc"], 1]
    other = (bucket_of("a") + 1) % 4096
    outside = post(client, DIGESTS_PATH, {"buckets": [other], "digests": [digest]})
    assert outside.status_code == 400 and outside.json()["index"] == 0
    for bad in (["a//b", v["version"], 1, 1], ["a", "x", 1, 1], ["a", v["version"], 2**70, 1]):
        body = {"buckets": [bucket_of("a")], "digests": [bad]}
        assert post(client, DIGESTS_PATH, body).status_code == 400


def test_a_malformed_forget_gets_400_and_changes_nothing(client, node):
    Member.objects.create(node_id="gone", url="http://gone", joined_at=1, status="dead")
    for body in ({"node_id": "gone", "incarnation": True}, {"node_id": "g\n", "incarnation": 0}):
        assert post(client, FORGET_PATH, body).status_code == 400
    assert post(client, FORGET_PATH, {"node_id": "gone", "incarnation": 2**64}).status_code == 400
    assert Member.objects.filter(node_id="gone").exists()


# --- the asking side checks answers ---------------------------------------------------------------


class AnsweringPeer:
    """A peer that answers whatever it is told to."""

    def __init__(self, merkle: dict, digests: dict | None = None) -> None:
        self.answers = {MERKLE_PATH: merkle, DIGESTS_PATH: digests or {}}

    def send(self, url, path, payload, *, to):
        return self.answers[path]


def test_a_malformed_merkle_answer_fails_the_exchange_and_changes_nothing():
    for answer in ({"hashes": []}, {"hashes": ["zz"]}, {"hashes": [1]}, {}):
        with pytest.raises(TransportError, match="malformed"):
            merkle_sync(AnsweringPeer(answer), "http://peer", peer_id="peer")


def test_a_digests_answer_with_a_bad_version_applies_nothing():
    services.entry_put(key="mine", value="1")
    # A root that differs from ours, down to one bucket: the peer claims every leaf differs.
    leaves = {"hashes": ["f" * 32]}
    bucket = bucket_of("theirs")
    twin = next(f"t{i}" for i in range(100_000) if bucket_of(f"t{i}") == bucket)
    good, bad = wire("theirs"), wire(twin, mode=99999)  # one bucket: one answer

    class Peer(AnsweringPeer):
        def send(self, url, path, payload, *, to):
            if path == MERKLE_PATH:
                return {"hashes": ["f" * 32] * len(payload["nodes"])}
            buckets = set(payload["buckets"])
            give = [v for v in (good, bad) if bucket_of(v["key"]) in buckets]
            return {"versions": give, "want": []}

    with pytest.raises(TransportError, match="malformed"):
        merkle_sync(Peer(leaves), "http://peer", peer_id="peer")
    assert stored_keys() == {"mine"}


# --- the sending side never sends what peers refuse ---------------------------------------------


def test_a_push_leaves_out_a_version_peers_would_refuse_and_moves_on():
    from cluster.membership import MemberState
    from cluster.replication import cursor_get, replicate_push

    services.entry_put(key="a", value="1")
    Entry.objects.filter(key="a").update(value="{not json")  # stored before peers checked
    services.entry_put(key="b", value="2")
    sent = []

    class Peer:
        def send(self, url, path, payload, *, to):
            sent.extend(version_parse(v).key for v in payload["versions"])
            return {"applied": len(payload["versions"])}

    peer = MemberState(node_id="peer", url="http://peer.test", joined_at=1)
    replicate_push(Peer(), peer)
    assert "a" not in sent and "b" in sent
    assert cursor_get("peer") == selectors.store_state().revision


def test_pushes_are_split_below_the_request_size_limit(settings):
    from cluster.membership import MemberState
    from cluster.replication import replicate_push

    settings.KVS_PUSH_BATCH_BYTES = 10_000
    value = orjson.dumps('"' * 3000).decode()  # escaped again on the wire: about 12 kB
    for i in range(5):
        services.entry_put(key=f"q{i}", value=value)
    sizes = []

    class Peer:
        def send(self, url, path, payload, *, to):
            sizes.append(len(orjson.dumps(payload)))
            return {}

    replicate_push(Peer(), MemberState(node_id="peer", url="http://peer.test", joined_at=1))
    assert len(sizes) >= 5 and max(sizes) < 2 * 12_500


# --- the parts -----------------------------------------------------------------------------------


def test_key_check_allows_only_record_keys_under_the_reserved_prefix():
    assert key_check("app/x") is None
    assert key_check(record_key("acl", "team/")) is None
    assert key_check(record_key("users", "ann")) is None
    for bad in ("_x", "_sys/users", "_sys/users/", "_sys/other/x", "_sys/acl/a/b", "", "/a"):
        assert key_check(bad) is not None, bad


def test_a_walk_where_every_leaf_differs_stays_within_what_peers_accept():
    from cluster.wire import digests_request_parse, merkle_request_parse

    services.entry_put(key="one", value="1")
    asked: dict[str, list[int]] = {MERKLE_PATH: [], DIGESTS_PATH: []}

    class EverythingDiffers:
        """A peer whose every tree node differs from ours; it checks what it is sent as the
        endpoints do."""

        def send(self, url, path, payload, *, to):
            payload = orjson.loads(orjson.dumps(payload))  # as on the wire
            if path == MERKLE_PATH:
                _, nodes = merkle_request_parse(payload)
                asked[path].append(len(nodes))
                return {"hashes": ["f" * 32] * len(nodes)}
            if path == DIGESTS_PATH:
                buckets, _ = digests_request_parse(payload)
                asked[path].append(len(buckets))
                return {"versions": [], "want": []}
            return {"applied": 0}

    report = merkle_sync(EverythingDiffers(), "http://peer", peer_id="peer")
    assert asked[MERKLE_PATH] == [1, 16, 256, 4096]
    assert asked[DIGESTS_PATH] == [256] * 16 and len(report.buckets) == 4096


def test_digests_of_crowded_buckets_go_in_messages_below_the_size_limit(settings):
    from cluster.wire import digests_request_parse

    settings.KVS_PUSH_BATCH_BYTES = 2_000
    services.versions_apply(
        [Version(f"k{i}", uuid.uuid4(), 1, "n", 1, value="1") for i in range(60)]
    )
    sizes = []

    class Peer:
        def send(self, url, path, payload, *, to):
            if path == MERKLE_PATH:
                return {"hashes": ["f" * 32] * len(payload["nodes"])}
            digests_request_parse(orjson.loads(orjson.dumps(payload)))
            sizes.append(len(orjson.dumps(payload)))
            return {"versions": [], "want": []}

    merkle_sync(Peer(), "http://peer", peer_id="peer")
    assert len(sizes) > 16 and max(sizes) < 2 * 3_000
