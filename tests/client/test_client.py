"""kvsite_client against fake transports: answers to values and typed exceptions, endpoint
failover, which failures are retried, cursors, and the watch's per-key order."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from kvsite_client import Client, Conflict, NotFound, Unauthorized, Unavailable
from kvsite_client._watch import WatchState


def fake(handler) -> Client:
    return Client(
        ["http://a", "http://b"], token="t", transport=httpx.MockTransport(handler), backoff=0
    )


def test_answers_become_values_and_errors_keep_code_and_detail():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/kv/there":
            return httpx.Response(200, json={"key": "there", "value": 1})
        if request.url.path == "/api/v1/kv/clash":
            return httpx.Response(409, json={"detail": "differs", "code": "conflict"})
        return httpx.Response(404, json={"detail": "No key.", "code": "not_found"})

    with fake(handler) as kv:
        assert kv.get("there")["value"] == 1
        with pytest.raises(NotFound) as missing:
            kv.get("gone")
        assert (missing.value.code, missing.value.detail, missing.value.status) == (
            "not_found",
            "No key.",
            404,
        )
        with pytest.raises(Conflict):
            kv.put("clash", 2, cas="0")
        assert kv.exists("gone") is False


def test_a_dead_first_endpoint_fails_over_and_later_calls_stay_on_the_live_one():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"key": "k", "version": "v", "revision": 1})

    with fake(handler) as kv:
        assert kv.put("k", {"x": 1})["revision"] == 1  # never reached a: safe to resend
        kv.put("k", 2)
    assert seen == ["a", "b", "b"]


def test_a_write_that_may_have_reached_a_node_is_not_sent_again_unless_it_has_cas():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.host))
        if request.url.host == "a":
            raise httpx.ReadError("reset", request=request)
        return httpx.Response(200, json={"key": "k"})

    with fake(handler) as kv:
        with pytest.raises(Unavailable):
            kv.put("k", 1)
        assert seen == [("PUT", "a")]
        kv.put("k", 1, cas="0")
        kv.get("k")
    assert seen[1:] == [("PUT", "a"), ("PUT", "b"), ("GET", "b")]


def test_503_everywhere_is_retried_with_backoff_then_unavailable():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(503, json={"detail": "syncing", "code": "unavailable"})

    kv = fake(handler)
    kv.retries = 2
    with pytest.raises(Unavailable) as error:
        kv.put("k", 1)
    assert error.value.code == "unavailable"
    assert len(calls) == 6  # two endpoints, three rounds


def test_a_node_with_a_full_disk_fails_over_to_the_next_endpoint():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a":
            body = {"detail": "This node's disk is full.", "code": "insufficient_storage"}
            return httpx.Response(507, json=body)
        return httpx.Response(201, json={"key": "k", "version": "v", "revision": 1})

    with fake(handler) as kv:
        assert kv.put("k", 1)["revision"] == 1  # nothing was written on a: safe to resend
    assert seen == ["a", "b"]
    only_a = fake(lambda request: handler(httpx.Request("PUT", "http://a/")))
    only_a.retries = 0
    with pytest.raises(Unavailable) as error:
        only_a.put("k", 1)
    assert error.value.code == "insufficient_storage"


def test_a_401_with_a_refresh_token_refreshes_once_and_tells_the_caller():
    fresh = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/refresh":
            return httpx.Response(200, json={"access": "new"})
        if request.headers["authorization"] == "Bearer new":
            return httpx.Response(200, json={"username": "u"})
        return httpx.Response(401, json={"detail": "expired", "code": "not_authenticated"})

    kv = fake(handler)
    kv.refresh_token, kv.on_token = "r", fresh.append
    assert kv.whoami() == {"username": "u"}
    assert fresh == ["new"]
    kv.refresh_token = None
    kv.token = "old"
    with pytest.raises(Unauthorized):
        kv.whoami()


def test_list_follows_cursors():
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        if cursor is None:
            return httpx.Response(200, json={"items": [{"key": "a"}], "next_cursor": "c1"})
        return httpx.Response(200, json={"items": [{"key": "b"}], "next_cursor": None})

    with fake(handler) as kv:
        assert [item["key"] for item in kv.list("p/")] == ["a", "b"]


def test_watch_state_never_yields_an_older_version_after_a_newer_one():
    state = WatchState(prefix="", since=None)
    state.params("http://a")
    assert state.take({"type": "ready", "revision": 5, "node": "n1"})["type"] == "ready"
    put = {"type": "put", "key": "k", "version": "v2", "hlc": 200, "revision": 6}
    assert state.take(put) is put
    assert state.since == 6
    assert state.params("http://a") == {"prefix": "", "since": 6}  # same node: resume
    assert state.params("http://b") == {"prefix": "", "since": 0}  # another: fresh replay
    assert state.take({**put, "revision": 3}) is None  # the same version again
    assert state.take({**put, "version": "v1", "hlc": 100, "revision": 2}) is None  # older
    newer = {**put, "version": "v3", "hlc": 300, "revision": 9}
    assert state.take(newer) is newer
    with pytest.raises(Unauthorized):
        state.take({"type": "error", "status": 401, "detail": "revoked"})


FORBIDDEN = (
    "django",
    "rest_framework",
    "channels",
    "celery",
    "kv",
    "kvsite",
    "accounts",
    "cluster",
)
# What importing httpx and websockets may pull in (httpx loads its optional command line's
# click, rich and pygments when they are installed).
ALLOWED = {
    "kvsite_client", "httpx", "httpcore", "h11", "h2", "hpack", "hyperframe", "anyio", "sniffio",
    "idna", "certifi", "websockets", "typing_extensions", "exceptiongroup", "brotli", "zstandard",
    "socksio", "click", "rich", "pygments", "markdown_it", "mdurl",
}  # fmt: skip


def test_the_package_imports_without_django():
    code = (
        "import json, sys, kvsite_client, kvsite_client.client, kvsite_client.aio\n"
        "import websockets.sync.client, websockets.asyncio.client\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & set(FORBIDDEN)
    third_party = {m for m in loaded - set(sys.stdlib_module_names) if not m.startswith("_")}
    assert third_party <= ALLOWED, third_party - ALLOWED


def test_the_command_line_loads_neither_django_nor_celery():
    """`kvs get` and the other client commands start without the server's frameworks."""
    code = (
        "import json, sys, kvsite.cli, kvsite.commands\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(json.loads(out.stdout)) & {"django", "celery", "kombu", "rest_framework"}
