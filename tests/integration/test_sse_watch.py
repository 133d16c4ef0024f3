"""The watch as server-sent events on a real node: a real HTTP client, `Last-Event-ID` resume,
and `curl -N` as a shell watch."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from queue import Empty, Queue

import httpx
import pytest

from .helpers import Launch, kvs_up, logs_on_failure

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENT_DEADLINE_S = 20.0
CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    with kvs_up(tmp_path_factory.mktemp("sse"), nodes=1) as launched:
        yield launched


@pytest.fixture(autouse=True)
def _logs(request, node):
    with logs_on_failure(request, node):
        yield


def client(node: Launch) -> httpx.Client:
    return httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10.0
    )


def events(lines: Iterator[str]) -> Iterator[tuple[int | None, dict]]:
    """(id, data) of each event of a server-sent-events stream's lines."""
    ident = None
    for line in lines:
        if line.startswith("id: "):
            ident = int(line[4:])
        elif line.startswith("data: "):
            yield ident, json.loads(line[6:])
            ident = None


def test_httpx_stream_sees_ready_then_puts_and_resumes_with_last_event_id(node):
    with client(node) as api:
        headers = {"Accept": "text/event-stream"}
        with api.stream("GET", "/api/v1/watch", params={"prefix": "sse/"}, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            feed = events(r.iter_lines())
            ready_id, ready = next(feed)
            assert ready["type"] == "ready" and ready_id == ready["revision"]
            put = api.put("/api/v1/kv/sse/a", json={"n": 1}).json()
            ident, event = next(feed)
            assert (event["type"], event["key"], event["value"]) == ("put", "sse/a", {"n": 1})
            assert ident == event["revision"] == put["revision"]
        api.put("/api/v1/kv/sse/b", json=2)
        api.delete("/api/v1/kv/sse/a")
        headers["Last-Event-ID"] = str(ident)
        with api.stream("GET", "/api/v1/watch", params={"prefix": "sse/"}, headers=headers) as r:
            feed = events(r.iter_lines())
            got = [next(feed)[1] for _ in range(3)]
        assert [(e["type"], e.get("key")) for e in got] == [
            ("put", "sse/b"),
            ("delete", "sse/a"),
            ("ready", None),
        ]


def test_a_refused_stream_is_a_json_error(node):
    r = httpx.get(f"{node.url}/api/v1/watch?prefix=sse/", timeout=10.0)
    assert r.status_code == 401
    assert r.json()["detail"]
    with client(node) as api:
        assert api.get("/api/v1/watch", params={"prefix": "a//b"}).status_code == 400


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_n_is_a_shell_watch(node):
    argv = [CURL, "-sN", "-H", f"Authorization: Bearer {node.token}"]
    argv.append(f"{node.url}/api/v1/watch?prefix=shell/")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    lines: Queue[str] = Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()

    def next_data() -> dict:
        deadline = time.monotonic() + EVENT_DEADLINE_S
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except Empty:
                raise AssertionError("curl printed no event in time") from None
            if line.startswith("data: "):
                return json.loads(line[6:])

    try:
        assert next_data()["type"] == "ready"
        with client(node) as api:
            api.put("/api/v1/kv/shell/x", json="hello")
        event = next_data()
        assert (event["key"], event["value"]) == ("shell/x", "hello")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
