"""zstd bodies between nodes: what is compressed, both ways through the internal API, and what
a bad compressed body gets."""

import httpx
import orjson
import pytest
import zstandard

from cluster.compression import (
    HEADER_ACCEPT,
    HEADER_ENCODING,
    BadEncoding,
    body_decode,
    body_encode,
)
from cluster.models import Member
from cluster.transport import HttpTransport
from ops.tests.helpers import value

from .test_signing import (
    GOSSIP_PATH,
    SECRET,
    message,
    node,  # noqa: F401 (a fixture)
    post,
    signed,
    through_django_client,
)


def test_small_bodies_go_as_they_are(settings):
    settings.KVS_COMPRESS_MIN_BYTES = 4096
    assert body_encode(b"x" * 4095) == (b"x" * 4095, {})


def test_large_bodies_go_compressed_and_come_back_whole(settings):
    settings.KVS_COMPRESS_MIN_BYTES = 4096
    body = orjson.dumps([{"key": f"k/{i}", "value": "v" * 50} for i in range(200)])
    wire, headers = body_encode(body)
    assert headers == {HEADER_ENCODING: "zstd"}
    assert len(wire) < len(body) / 5
    assert body_decode(wire, "zstd", limit=len(body)) == body


def test_a_peer_that_did_not_ask_gets_its_answer_plain(settings):
    settings.KVS_COMPRESS_MIN_BYTES = 0
    assert body_encode(b"{}", allowed=False) == (b"{}", {})


@pytest.mark.parametrize(
    ("data", "encoding", "problem"),
    [
        (b"not zstd", "zstd", "does not decompress"),
        (zstandard.ZstdCompressor().compress(b"0" * 10_000), "zstd", "inflates beyond"),
        (b"{}", "gzip", "unknown"),
    ],
)
def test_bad_compressed_bodies_are_refused(data, encoding, problem):
    with pytest.raises(BadEncoding, match=problem):
        body_decode(data, encoding, limit=1000)


class Recorder:
    """An httpx transport through this node's views that keeps what crossed the wire."""

    def __init__(self):
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = through_django_client(request)
        self.exchanges.append((request, response))
        return response


def test_a_compressed_pushpull_is_answered_compressed(settings, node):  # noqa: F811
    settings.KVS_COMPRESS_MIN_BYTES = 0
    recorder = Recorder()
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    transport = HttpTransport(node_id="node2", secret=SECRET, client=client)
    answer = transport.send("http://testserver", GOSSIP_PATH, orjson.loads(message()), to="node1")
    assert answer["from"] == "node1"
    assert Member.objects.filter(node_id="node2").exists()
    request, response = recorder.exchanges[0]
    assert request.headers[HEADER_ENCODING] == "zstd"
    assert request.headers[HEADER_ACCEPT] == "zstd"
    assert response.headers[HEADER_ENCODING] == "zstd"
    assert orjson.loads(zstandard.ZstdDecompressor().decompress(request.content)) == orjson.loads(
        message()
    )


def test_an_answer_to_a_peer_that_did_not_ask_is_plain(client, settings, node):  # noqa: F811
    settings.KVS_COMPRESS_MIN_BYTES = 0
    body = message()
    response = post(client, body, signed(body))
    assert response.status_code == 200
    assert HEADER_ENCODING not in response.headers
    assert orjson.loads(response.content)["from"] == "node1"


def test_a_signed_body_that_does_not_decompress_gets_400_and_changes_nothing(client, node):  # noqa: F811
    body = b"\x28\xb5\x2f\xfd garbage"
    response = post(client, body, {**signed(body), HEADER_ENCODING: "zstd"})
    assert response.status_code == 400
    assert "does not decompress" in response.json()["detail"]
    assert not Member.objects.exists()


def test_a_compressed_bomb_gets_400(client, settings, node):  # noqa: F811
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = zstandard.ZstdCompressor().compress(b" " * 100_000)
    response = post(client, body, {**signed(body), HEADER_ENCODING: "zstd"})
    assert response.status_code == 400
    assert "inflates beyond" in response.json()["detail"]


def test_the_bytes_on_the_wire_and_as_json_are_counted(settings, node):  # noqa: F811
    settings.KVS_COMPRESS_MIN_BYTES = 0
    labels = {"path": GOSSIP_PATH, "direction": "sent"}
    wire, plain = (
        value("kvs_cluster_bytes_total", form="wire", **labels),
        value("kvs_cluster_bytes_total", form="json", **labels),
    )
    payload = orjson.loads(message())
    transport = HttpTransport(
        node_id="node2",
        secret=SECRET,
        client=httpx.Client(transport=httpx.MockTransport(through_django_client)),
    )
    transport.send("http://testserver", GOSSIP_PATH, payload, to="node1")
    sent_plain = value("kvs_cluster_bytes_total", form="json", **labels) - plain
    sent_wire = value("kvs_cluster_bytes_total", form="wire", **labels) - wire
    assert sent_plain == len(orjson.dumps(payload))
    assert 0 < sent_wire != sent_plain
    received = value("kvs_cluster_bytes_total", path=GOSSIP_PATH, direction="received", form="json")
    assert received > 0
