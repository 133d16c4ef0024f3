"""Push replication from per-peer cursors, and the signed endpoints replication uses."""

import uuid

import orjson
import pytest
from django.core.cache import cache

from cluster import replication, tasks
from cluster.antientropy import DIGESTS_PATH, MERKLE_PATH, VERSIONS_PATH
from cluster.membership import MemberState
from cluster.models import Member
from cluster.node import local_node
from cluster.replication import cursor_get, replicate_push
from cluster.signing import sign_request
from cluster.transport import TransportError
from kv import selectors, services
from kv.hlc import hlc_from_ms, wall_ms
from kv.models import Entry
from kv.versions import Version

pytestmark = pytest.mark.django_db
SECRET = "replication-secret-0123456789"
PEER = MemberState(node_id="peer", url="http://peer.test", joined_at=1)


class RecordingTransport:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict] = []
        self.fail = fail

    def send(self, url: str, path: str, payload: dict, *, to: str) -> dict:
        if self.fail:
            raise TransportError("peer down")
        assert (url, to, path) == (PEER.url, PEER.node_id, VERSIONS_PATH)
        self.sent.append(payload)
        return {"applied": len(payload["versions"])}


def keys_sent(transport: RecordingTransport) -> list[str]:
    return [v["key"] for payload in transport.sent for v in payload["versions"]]


def test_a_push_sends_changes_past_the_cursor_in_revision_order(settings):
    settings.KVS_PUSH_BATCH = 2
    for key in ["a", "b", "c"]:
        services.entry_put(key=key, value="1")
    transport = RecordingTransport()
    assert replicate_push(transport, PEER) == 3
    assert keys_sent(transport) == ["a", "b", "c"]
    assert len(transport.sent) == 2  # batches of two
    assert cursor_get("peer") == selectors.store_state().revision
    services.entry_put(key="b", value="2")
    services.entry_delete(key="a")
    again = RecordingTransport()
    replicate_push(again, PEER)
    assert keys_sent(again) == ["b", "a"]
    assert [v["deleted"] for v in again.sent[0]["versions"]] == [False, True]


def test_versions_the_peer_wrote_are_not_sent_back():
    services.versions_apply(
        [Version("theirs", uuid.uuid4(), hlc_from_ms(wall_ms()), "peer", 1, value="1")]
    )
    services.entry_put(key="ours", value="1")
    transport = RecordingTransport()
    replicate_push(transport, PEER)
    assert keys_sent(transport) == ["ours"]
    assert cursor_get("peer") == selectors.store_state().revision


def test_a_failed_push_keeps_the_cursor_so_the_peer_catches_up_later():
    services.entry_put(key="a", value="1")
    with pytest.raises(TransportError):
        replicate_push(RecordingTransport(fail=True), PEER)
    assert cursor_get("peer") == 0
    transport = RecordingTransport()
    replicate_push(transport, PEER)
    assert keys_sent(transport) == ["a"]


# --- The signed endpoints -------------------------------------------------------------------------


@pytest.fixture
def node(settings):
    """This node, with `peer` as an alive member (the endpoints answer members only)."""
    settings.KVS_CLUSTER_SECRET = SECRET
    Member.objects.create(node_id=PEER.node_id, url=PEER.url, joined_at=PEER.joined_at)
    return local_node()


def post(client, path: str, payload, *, secret: str = SECRET, target: str | None = None):
    body = orjson.dumps(payload)
    headers = sign_request(
        secret,
        node_id="peer",
        target=target or local_node().node_id,
        method="POST",
        path=path,
        body=body,
        now=wall_ms(),
    )
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic("POST", path, body, content_type="application/json", **extra)


def test_pushed_versions_are_applied_once(client, node):
    v = Version("k", uuid.uuid4(), hlc_from_ms(wall_ms()), "peer", 1, value='{"x":1}')
    response = post(client, VERSIONS_PATH, {"versions": [v.as_wire()]})
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content) == {"applied": 1}
    assert orjson.loads(post(client, VERSIONS_PATH, {"versions": [v.as_wire()]}).content) == {
        "applied": 0
    }
    assert Entry.objects.get(key="k").value == '{"x":1}'


def test_unsigned_or_mis_signed_pushes_are_refused_and_change_nothing(client, node):
    v = Version("k", uuid.uuid4(), hlc_from_ms(wall_ms()), "peer", 1, value="1")
    body = orjson.dumps({"versions": [v.as_wire()]})
    unsigned = client.generic("POST", VERSIONS_PATH, body, content_type="application/json")
    assert unsigned.status_code == 401
    wrong = post(client, VERSIONS_PATH, {"versions": [v.as_wire()]}, secret="not-the-secret-000")
    assert wrong.status_code == 401
    assert not Entry.objects.filter(key="k").exists()


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (VERSIONS_PATH, {"versions": [{"key": "k"}]}),
        (VERSIONS_PATH, {"versions": "no"}),
        (VERSIONS_PATH, [1]),
        (MERKLE_PATH, {"level": 9, "nodes": [0]}),
        (MERKLE_PATH, {"level": 0, "nodes": ["x"]}),
        (DIGESTS_PATH, {"buckets": [1], "digests": [["k"]]}),
    ],
)
def test_malformed_messages_get_400(client, node, path, payload):
    response = post(client, path, payload)
    assert response.status_code == 400, response.content
    assert "detail" in orjson.loads(response.content)


def test_merkle_and_digest_answers(client, node):
    services.entry_put(key="a", value="1")
    root = orjson.loads(post(client, MERKLE_PATH, {"level": 0, "nodes": [0]}).content)
    assert root == {"hashes": [selectors.store_state().merkle_root], "syncing": False}
    bucket = Entry.objects.get(key="a").bucket
    answer = orjson.loads(post(client, DIGESTS_PATH, {"buckets": [bucket], "digests": []}).content)
    assert [v["key"] for v in answer["versions"]] == ["a"] and answer["want"] == []


# --- Starting pushes after commits ---------------------------------------------------------------


@pytest.mark.parametrize("interval", [1.0, 0])
def test_commits_queue_one_push_at_a_time_with_or_without_a_sweep(settings, monkeypatch, interval):
    settings.KVS_PUSH_INTERVAL = interval
    queued = []
    monkeypatch.setattr(replication, "_peers_alive", lambda: True)
    monkeypatch.setattr(
        tasks.replicate_push_all, "apply_async", lambda **kw: queued.append(kw["expires"])
    )
    replication._enqueue_push()
    replication._enqueue_push()  # the first is queued and not started: it will read this commit
    assert len(queued) == 1 and queued[0] > 0
    cache.delete(replication.PUSH_PENDING)  # as the task does when it starts
    replication._enqueue_push()
    assert len(queued) == 2
