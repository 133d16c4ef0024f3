"""Signed node-to-node requests and answers: pure checks, then the internal endpoint both ways."""

import logging

import httpx
import orjson
import pytest
from django.test import Client

from cluster.config import Config
from cluster.gossip import GOSSIP_PATH
from cluster.models import Member
from cluster.node import local_node
from cluster.signing import (
    ANY_NODE,
    HEADER_NODE,
    HEADER_SIGNATURE,
    HEADER_TARGET,
    HEADER_TIMESTAMP,
    BadSignature,
    sign_request,
    sign_response,
    signature_remember,
    verify_request,
    verify_response,
)
from cluster.transport import HttpTransport, TransportError, node_id_at
from kv.hlc import wall_ms

SECRET = "the-cluster-secret-0123456789"
NOW = 1_700_000_000_000
WINDOW_MS = 30_000
BODY = b'{"from": "node2", "members": []}'


def headers_for(
    *,
    secret=SECRET,
    node_id="node2",
    target="node1",
    method="POST",
    path=GOSSIP_PATH,
    body=BODY,
    now=NOW,
):
    return sign_request(
        secret, node_id=node_id, target=target, method=method, path=path, body=body, now=now
    )


def verify(
    headers,
    *,
    method="POST",
    path=GOSSIP_PATH,
    body=BODY,
    now=NOW,
    remember=None,
    self_id="node1",
    any_target=False,
):
    return verify_request(
        SECRET,
        method=method,
        path=path,
        body=body,
        headers=headers,
        now=now,
        window_ms=WINDOW_MS,
        remember=remember or (lambda signature: True),
        self_id=self_id,
        any_target=any_target,
    )


# --- requests ------------------------------------------------------------------------------------


def test_a_valid_signature_is_accepted():
    signed = verify(headers_for())
    assert (signed.node_id, signed.target, signed.timestamp) == ("node2", "node1", NOW)


def test_a_request_signed_for_another_node_is_refused():
    with pytest.raises(BadSignature, match="signed for 'node3'"):
        verify(headers_for(target="node3"))
    with pytest.raises(BadSignature, match="bad signature"):  # the target header is signed
        verify({**headers_for(target="node3"), HEADER_TARGET: "node1"})


def test_any_node_is_accepted_only_where_the_endpoint_allows_it():
    with pytest.raises(BadSignature, match="not for this node"):
        verify(headers_for(target=ANY_NODE))
    assert verify(headers_for(target=ANY_NODE), any_target=True).target == ANY_NODE
    with pytest.raises(BadSignature, match="not for this node"):  # any_target is no wildcard
        verify(headers_for(target="node3"), any_target=True)


@pytest.mark.parametrize(
    "tamper",
    [
        {"body": BODY.replace(b"node2", b"node3")},
        {"path": GOSSIP_PATH + "x"},
        {"path": GOSSIP_PATH + "?a=1"},
        {"method": "PUT"},
    ],
    ids=["body", "path", "query", "method"],
)
def test_a_tampered_request_is_refused(tamper):
    with pytest.raises(BadSignature, match="bad signature"):
        verify(headers_for(), **tamper)


def test_a_query_string_is_signed():
    headers = headers_for(path=GOSSIP_PATH + "?a=1")
    verify(headers, path=GOSSIP_PATH + "?a=1")
    with pytest.raises(BadSignature):
        verify(headers, path=GOSSIP_PATH + "?a=2")


def test_a_swapped_node_id_is_refused():
    headers = {**headers_for(), HEADER_NODE: "node1"}
    with pytest.raises(BadSignature, match="bad signature"):
        verify(headers)


def test_a_wrong_secret_is_refused():
    with pytest.raises(BadSignature, match="bad signature"):
        verify(headers_for(secret="another-cluster"))


@pytest.mark.parametrize("skew", [-WINDOW_MS - 1, WINDOW_MS + 1])
def test_a_stale_or_future_timestamp_is_refused(skew):
    with pytest.raises(BadSignature, match="stale"):
        verify(headers_for(now=NOW + skew))


@pytest.mark.parametrize("skew", [-WINDOW_MS, WINDOW_MS])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(skew):
    verify(headers_for(now=NOW + skew))


def test_a_replayed_request_is_refused():
    headers = headers_for()

    def remember(signature: str) -> bool:
        return signature_remember(signature, window_ms=WINDOW_MS)

    verify(headers, remember=remember)
    with pytest.raises(BadSignature, match="replayed"):
        verify(headers, remember=remember)
    verify(headers_for(), remember=remember)  # the same message signed again has a new nonce


@pytest.mark.parametrize(
    "missing", [HEADER_NODE, HEADER_TARGET, HEADER_TIMESTAMP, HEADER_SIGNATURE]
)
def test_an_unsigned_request_is_refused(missing):
    headers = {k: v for k, v in headers_for().items() if k != missing}
    with pytest.raises(BadSignature, match="unsigned"):
        verify(headers)


@pytest.mark.parametrize("stamp", ["12a", "-5", "١٢", "9" * 200])
def test_a_malformed_timestamp_is_refused(stamp):
    with pytest.raises(BadSignature, match="malformed"):
        verify({**headers_for(), HEADER_TIMESTAMP: stamp})


def test_a_non_ascii_signature_is_refused_not_crashed():
    with pytest.raises(BadSignature, match="bad signature"):
        verify({**headers_for(), HEADER_SIGNATURE: "é" * 64})


# --- answers -------------------------------------------------------------------------------------


def test_an_answer_is_bound_to_its_request_and_body():
    request_sig = headers_for()[HEADER_SIGNATURE]
    headers = sign_response(
        SECRET, request_signature=request_sig, node_id="n1", status=200, body=b"{}"
    )
    ok = {"request_signature": request_sig, "status": 200, "body": b"{}", "headers": headers}
    assert verify_response(SECRET, **ok) == "n1"
    for tamper in (
        {"body": b"[]"},
        {"status": 500},
        {"request_signature": headers_for()[HEADER_SIGNATURE]},
        {"headers": {**headers, HEADER_NODE: "n2"}},
    ):
        with pytest.raises(BadSignature):
            verify_response(SECRET, **{**ok, **tamper})
    with pytest.raises(BadSignature):
        verify_response("another-cluster", **ok)


# --- the internal endpoint, over the Django test client ------------------------------------------


@pytest.fixture
def node(settings, db):
    settings.KVS_CLUSTER_SECRET = SECRET
    settings.KVS_NODE_ID = "node1"
    settings.KVS_ADVERTISE_URL = "http://node1.test"
    return local_node()


def message(sender="node2", heartbeat=1) -> bytes:
    member = {
        "node_id": sender,
        "url": f"http://{sender}.test",
        "joined_at": 2,
        "incarnation": 0,
        "heartbeat": heartbeat,
        "status": "alive",
    }
    return orjson.dumps({"from": sender, "members": [member]})


def post(client, body: bytes, headers: dict, path: str = GOSSIP_PATH):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic("POST", path, body, content_type="application/json", **extra)


def signed(body: bytes, **kw) -> dict:
    return headers_for(body=body, now=kw.pop("now", wall_ms()), **kw)


def test_a_signed_pushpull_is_answered_with_a_signed_table(client, node):
    body = message()
    headers = signed(body)
    response = post(client, body, headers)
    assert response.status_code == 200, response.content
    answer = orjson.loads(response.content)
    assert answer["from"] == "node1"
    assert {m["node_id"] for m in answer["members"]} == {"node1", "node2"}
    node_id = verify_response(
        SECRET,
        request_signature=headers[HEADER_SIGNATURE],
        status=200,
        body=response.content,
        headers=response.headers,
    )
    assert node_id == "node1"
    assert Member.objects.get(node_id="node2").status == "alive"


@pytest.mark.parametrize(
    "bad",
    ["unsigned", "wrong secret", "stale", "tampered body", "tampered path", "replayed"],
)
def test_a_bad_request_gets_401_json_and_changes_nothing(client, node, bad):
    body = message()
    headers = {
        "unsigned": {},
        "wrong secret": signed(body, secret="another-cluster"),
        "stale": signed(body, now=wall_ms() - 60_000),
        "tampered body": signed(message(heartbeat=999)),
        "tampered path": signed(body, path="/cluster/internal/other"),
        "replayed": signed(body),
    }[bad]
    if bad == "replayed":
        assert post(client, body, headers).status_code == 200
        Member.objects.all().delete()
    response = post(client, body, headers)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json() and response["WWW-Authenticate"]
    assert not Member.objects.exists()


def test_a_pushpull_signed_for_another_node_gets_401_and_changes_nothing(client, node):
    body = message()
    response = post(client, body, signed(body, target="node3"))
    assert response.status_code == 401
    assert "node3" in response.json()["detail"]
    assert not Member.objects.exists()


def test_a_pushpull_signed_for_any_node_is_accepted_as_a_join(client, node):
    body = message()
    response = post(client, body, signed(body, target=ANY_NODE))
    assert response.status_code == 200, response.content
    assert Member.objects.filter(node_id="node2").exists()


def test_a_message_from_another_node_than_the_signer_is_refused(client, node):
    body = message(sender="node3")
    response = post(client, body, signed(body, node_id="node2"))
    assert response.status_code == 400
    assert not Member.objects.exists()


@pytest.mark.parametrize("payload", [b"[]", b'{"from": "node2"}', b"{not json"])
def test_a_malformed_message_is_refused(client, node, payload):
    assert post(client, payload, signed(payload)).status_code == 400


# --- both sides: HttpTransport against the endpoint, through the Django test client ---------------


def through_django_client(request: httpx.Request) -> httpx.Response:
    """An httpx request served by this node's views via the Django test client."""
    extra = {
        f"HTTP_{name.upper().replace('-', '_')}": value
        for name, value in request.headers.items()
        if name.lower().startswith("x-kvs-")
    }
    response = Client().generic(
        request.method,
        request.url.raw_path.decode(),
        request.content,
        content_type=request.headers.get("content-type", "application/octet-stream"),
        **extra,
    )
    return httpx.Response(
        response.status_code, headers=dict(response.headers), content=response.content
    )


def django_transport(secret: str = SECRET) -> HttpTransport:
    client = httpx.Client(transport=httpx.MockTransport(through_django_client))
    return HttpTransport(node_id="node2", secret=secret, client=client)


def test_http_transport_and_the_endpoint_agree(node):
    payload = orjson.loads(message())
    answer = django_transport().send("http://testserver", GOSSIP_PATH, payload, to="node1")
    assert answer["from"] == "node1"
    assert Member.objects.filter(node_id="node2").exists()


def test_http_transport_reaching_another_node_than_meant_is_refused(node):
    # The URL leads to node1, but the sender meant node3 (a stale member table, a replay).
    with pytest.raises(TransportError, match="401"):
        django_transport().send(
            "http://testserver", GOSSIP_PATH, orjson.loads(message()), to="node3"
        )
    assert not Member.objects.exists()


def test_http_transport_with_the_wrong_secret_is_refused(node):
    with pytest.raises(TransportError, match="401"):
        django_transport("another-cluster").send(
            "http://testserver", GOSSIP_PATH, orjson.loads(message()), to="node1"
        )
    assert not Member.objects.exists()


def test_http_transport_refuses_an_answer_signed_by_another_node_than_meant():
    def impostor(request: httpx.Request) -> httpx.Response:
        body = b"{}"
        headers = sign_response(
            SECRET,
            request_signature=request.headers[HEADER_SIGNATURE],
            node_id="node9",
            status=200,
            body=body,
        )
        return httpx.Response(200, content=body, headers=headers)

    client = httpx.Client(transport=httpx.MockTransport(impostor))
    transport = HttpTransport(node_id="node2", secret=SECRET, client=client)
    with pytest.raises(TransportError, match="answered by 'node9'"):
        transport.send("http://peer", GOSSIP_PATH, {}, to="node1")
    assert transport.send("http://peer", GOSSIP_PATH, {}, to=ANY_NODE) == {}  # a seed: anyone


def test_http_transport_refuses_an_unsigned_or_forged_answer():
    def forged(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"from": "x", "members": []}, headers={HEADER_NODE: "x"})

    transport = HttpTransport(
        node_id="node2", secret=SECRET, client=httpx.Client(transport=httpx.MockTransport(forged))
    )
    with pytest.raises(TransportError, match="unsigned answer"):
        transport.send("http://peer", GOSSIP_PATH, {}, to="x")


def test_http_transport_turns_network_errors_into_transport_errors():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    transport = HttpTransport(node_id="node2", secret=SECRET, client=client)
    with pytest.raises(TransportError, match="ConnectError"):
        transport.send("http://peer", GOSSIP_PATH, {}, to="peer")


def test_the_secret_is_never_shown(client, node, caplog):
    caplog.set_level(logging.DEBUG)
    post(client, message(), signed(message(), secret="another-cluster"))
    transport = HttpTransport(node_id="node2", secret=SECRET)
    config = Config(node_id="n", url="u", joined_at=0, secret=SECRET)
    assert SECRET not in caplog.text + repr(transport) + repr(config)


# --- /cluster/internal/forget -------------------------------------------------------------------

FORGET = "/cluster/internal/forget"


def dead_member(node_id: str = "node3", incarnation: int = 2) -> None:
    """`node_id` dead here, and node2 (who signs the requests) an alive member."""
    Member.objects.get_or_create(node_id="node2", url="http://node2.test", joined_at=2)
    Member.objects.create(
        node_id=node_id, url=f"http://{node_id}.test", joined_at=1, incarnation=incarnation,
        status="dead",
    )  # fmt: skip


def test_a_signed_forget_removes_a_dead_member(client, node):
    dead_member()
    body = orjson.dumps({"node_id": "node3", "incarnation": 2})
    response = post(client, body, signed(body, path=FORGET), path=FORGET)
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content) == {"forgotten": True}
    assert not Member.objects.filter(node_id="node3").exists()


def test_an_unsigned_forget_is_refused_and_changes_nothing(client, node):
    dead_member()
    body = orjson.dumps({"node_id": "node3", "incarnation": 2})
    assert post(client, body, {}, path=FORGET).status_code == 401
    forged = signed(body, secret="another-cluster")
    assert post(client, body, forged, path=FORGET).status_code == 401
    assert Member.objects.filter(node_id="node3").exists()


@pytest.mark.parametrize("target", ["node4", ANY_NODE])
def test_a_forget_signed_for_another_node_or_any_node_is_refused(client, node, target):
    dead_member()
    body = orjson.dumps({"node_id": "node3", "incarnation": 2})
    response = post(client, body, signed(body, path=FORGET, target=target), path=FORGET)
    assert response.status_code == 401 and "detail" in response.json()
    assert Member.objects.filter(node_id="node3").exists()


@pytest.mark.parametrize(
    "payload", [b"[]", b'{"node_id": "node3"}', b'{"node_id": "", "incarnation": 1}', b"{bad"]
)
def test_a_malformed_forget_is_refused(client, node, payload):
    dead_member()
    response = post(client, payload, signed(payload, path=FORGET), path=FORGET)
    assert response.status_code == 400 and "detail" in response.json()
    assert Member.objects.filter(node_id="node3").exists()


# --- a node that is not a member: its id from /health --------------------------------------------


def test_node_id_at_reads_the_id_a_node_states_on_its_health(node):
    client = httpx.Client(transport=httpx.MockTransport(through_django_client))
    assert node_id_at("http://testserver", client=client) == "node1"


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503), httpx.Response(200, content=b"<html>"), httpx.Response(200, json=[])],
    ids=["503", "not JSON", "no id"],
)
def test_node_id_at_fails_cleanly_without_a_stated_id(answer):
    client = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
    with pytest.raises(TransportError):
        node_id_at("http://peer", client=client)
