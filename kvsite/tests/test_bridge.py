"""The bridge from the event loop to WSGI: which requests run on the loop thread, the environ
Django gets, and answers whole or streamed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from kvsite.bridge import WsgiBridge, environ_build, inline_read


def scope(method: str = "GET", path: str = "/api/v1/kv/a", **extra) -> dict:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"node")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
        **extra,
    }


class Whole(list):
    """A Django response as WSGI sees it: an iterable of bytes, not streaming, closable."""

    streaming = False
    closed = False

    def close(self) -> None:
        self.closed = True


class Recorder:
    """A WSGI app that records where and how it ran."""

    def __init__(self, answer=None) -> None:
        self.answer = answer
        self.thread: int | None = None
        self.loop_visible: bool | None = None
        self.environ: dict | None = None

    def __call__(self, environ, start_response):
        self.thread, self.environ = threading.get_ident(), environ
        try:
            asyncio.get_running_loop()
            self.loop_visible = True
        except RuntimeError:
            self.loop_visible = False
        start_response("201 Created", [("Content-Type", "application/json")])
        return self.answer if self.answer is not None else Whole([b'{"a":', b" 1}"])


def exchange(bridge: WsgiBridge, request: dict, body: bytes = b"") -> tuple[list[dict], int]:
    """The messages the bridge sends for one request, and the loop thread's ident."""
    sent: list[dict] = []

    async def run() -> int:
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        await bridge(request, receive, send)
        assert asyncio.get_running_loop() is not None  # the loop is back after an inline call
        return threading.get_ident()

    return sent, asyncio.run(run())


@pytest.mark.parametrize(
    ("method", "path", "inline"),
    [
        ("GET", "/api/v1/kv/a/b", True),
        ("HEAD", "/api/v1/kv/a", True),
        ("GET", "/health", True),
        ("GET", "/api/v1/kv/", False),  # a list: up to a thousand values
        ("PUT", "/api/v1/kv/a", False),  # writes may wait for the write lock
        ("DELETE", "/api/v1/kv/a", False),
        ("GET", "/api/v1/status", False),
        ("GET", "/admin/", False),
    ],
)
def test_only_single_key_reads_and_health_run_on_the_loop(method, path, inline):
    assert inline_read(scope(method, path)) is inline


def test_the_environ_carries_the_request_as_pep_3333_says():
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
        (b"x-a", b"1"),
        (b"x-a", b"2"),
        (b"authorization", b"Bearer t"),
    ]
    request = scope("PUT", "/api/v1/kv/é", headers=headers, query_string=b"ttl=5")
    environ = environ_build(request, b"{}")
    assert environ["REQUEST_METHOD"] == "PUT"
    assert environ["PATH_INFO"] == "/api/v1/kv/é".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "ttl=5"
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/json", "2")
    assert environ["HTTP_X_A"] == "1,2"
    assert environ["HTTP_AUTHORIZATION"] == "Bearer t"
    assert (environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == ("127.0.0.1", "8001")
    assert environ["wsgi.input"].read() == b"{}"
    assert environ["asgi.scope"] is request


def test_a_request_not_picked_runs_on_a_pool_thread_and_is_answered_whole():
    app = Recorder()
    sent, loop_thread = exchange(WsgiBridge(app, threads=2, inline=inline_read), scope("PUT"), b"1")
    assert app.thread != loop_thread
    assert app.environ["wsgi.input"].read() == b"1"
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json")],
        },
        {"type": "http.response.body", "body": b'{"a": 1}'},
    ]


def test_a_read_picked_runs_on_the_loop_thread_with_the_loop_set_aside():
    answer = Whole([b"{}"])
    app = Recorder(answer)
    sent, loop_thread = exchange(WsgiBridge(app, threads=2, inline=inline_read), scope("GET"))
    assert app.thread == loop_thread
    assert app.loop_visible is False  # Django's database calls would refuse a running loop
    assert answer.closed  # Django's request_finished (connections go back) runs
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_a_streaming_answer_is_sent_chunk_by_chunk_and_closed():
    closed = []

    def chunks():
        try:
            yield b"a"
            yield b""
            yield b"b"
        finally:
            closed.append(True)

    for inline in (None, inline_read):  # a read that streams is streamed from a thread too
        closed.clear()
        sent, _ = exchange(WsgiBridge(Recorder(chunks()), threads=2, inline=inline), scope())
        bodies = [(m["body"], m.get("more_body", False)) for m in sent[1:]]
        assert sent[0]["status"] == 201
        assert bodies == [(b"a", True), (b"b", True), (b"", False)]
        assert closed == [True]


def inline_reads_setting(env: dict[str, str]) -> str:
    """KVS_HTTP_INLINE_READS as a fresh process's settings read it from `env`."""
    code = "from django.conf import settings; print(settings.KVS_HTTP_INLINE_READS)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize(
    "database_url, inline",
    [
        (None, "True"),  # the default: SQLite in the data directory
        ("sqlite:///{tmp}/other.sqlite3", "True"),
        ("postgres://kvs:secret@127.0.0.1:5432/kvs", "False"),
    ],
)
def test_reads_run_on_the_loop_by_default_only_on_sqlite(tmp_path, database_url, inline):
    unset = ("DATABASE_URL", "KVS_HTTP_INLINE_READS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(KVS_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="kvsite.settings")
    if database_url is not None:
        env["DATABASE_URL"] = database_url.format(tmp=tmp_path)
    assert inline_reads_setting(env) == inline
    env["KVS_HTTP_INLINE_READS"] = "false"  # an explicit setting wins
    assert inline_reads_setting(env) == "False"
