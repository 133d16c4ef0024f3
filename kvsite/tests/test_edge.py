"""The ASGI body buffer, driven as a server drives it: scope, receive and send callables."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from kvsite.edge import BufferedBody
from kvsite.realtime import HttpRouter

LIMIT = 100


class App:
    """The wrapped application: records what it was given and answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, list[dict]]] = []

    async def __call__(self, scope, receive, send) -> None:
        messages = [await receive()]
        if scope["type"] == "http":
            messages.append(await receive())  # what a WSGI bridge listening for disconnect sees
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        self.calls.append((scope, messages))


def http_scope(*headers: tuple[bytes, bytes], method: str = "POST", version: str = "1.1") -> dict:
    scope = {"type": "http", "http_version": version, "method": method, "path": "/x"}
    return {**scope, "headers": list(headers)}


def body_messages(*chunks: bytes) -> list[dict]:
    last = len(chunks) - 1
    return [
        {"type": "http.request", "body": chunk, "more_body": i < last}
        for i, chunk in enumerate(chunks)
    ]


def run(
    scope: dict,
    messages: list[dict],
    *,
    app: App | None = None,
    timeout_s: float = 5.0,
    stall: bool = False,
):
    """Run BufferedBody over `messages` (then a disconnect, or nothing ever if `stall`); the
    app and what was sent back."""
    app = app or App()
    sent: list[dict] = []
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        if stall:
            await asyncio.Event().wait()  # never set: the client sends nothing more
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(BufferedBody(app, max_bytes=LIMIT, timeout_s=timeout_s)(scope, receive, send))
    return app, sent


def answer(sent: list[dict]) -> tuple[int, dict, dict]:
    """Status, headers and JSON body of a refusal."""
    start, body = sent
    return start["status"], dict(start["headers"]), orjson.loads(body["body"])


def test_a_body_in_chunks_reaches_the_app_whole_in_one_message():
    scope = http_scope((b"content-length", b"6"))
    app, sent = run(scope, body_messages(b"ab", b"cd", b"ef"))
    ((seen, messages),) = app.calls
    assert seen is scope
    assert messages[0] == {"type": "http.request", "body": b"abcdef", "more_body": False}
    assert messages[1] == {"type": "http.disconnect"}  # the server's own receive, after that
    assert sent[0]["status"] == 200


def test_a_chunked_body_is_handed_on_with_the_length_it_turned_out_to_have():
    scope = http_scope((b"transfer-encoding", b"chunked"), (b"content-type", b"application/json"))
    app, _ = run(scope, body_messages(b'{"a":', b"1}"))
    ((seen, messages),) = app.calls
    assert messages[0]["body"] == b'{"a":1}'
    assert seen["headers"] == [(b"content-type", b"application/json"), (b"content-length", b"7")]
    assert scope["headers"][0] == (b"transfer-encoding", b"chunked")  # the server's is unchanged


def test_an_empty_body_is_handed_on_as_is():
    scope = http_scope(method="GET")
    app, sent = run(scope, body_messages(b""))
    ((seen, messages),) = app.calls
    assert seen is scope and messages[0]["body"] == b"" and sent[0]["status"] == 200


def test_a_body_of_exactly_the_limit_is_taken():
    scope = http_scope((b"content-length", str(LIMIT).encode()))
    app, _ = run(scope, body_messages(b"x" * 60, b"x" * 40))
    assert app.calls[0][1][0]["body"] == b"x" * LIMIT


def test_a_declared_length_over_the_limit_is_413_before_any_body_is_read():
    app = App()

    async def must_not_receive() -> dict:
        raise AssertionError("the body was read")

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = http_scope((b"content-length", str(LIMIT + 1).encode()))
    asyncio.run(BufferedBody(app, max_bytes=LIMIT, timeout_s=5)(scope, must_not_receive, send))
    status, headers, body = answer(sent)
    assert status == 413 and body == {"detail": "Request body too large.", "code": "too_large"}
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json"
    assert app.calls == []


def test_a_streamed_body_over_the_limit_is_413():
    scope = http_scope((b"transfer-encoding", b"chunked"))
    app, sent = run(scope, body_messages(b"x" * 60, b"x" * 41, b"never read"))
    status, headers, body = answer(sent)
    assert status == 413 and body["code"] == "too_large"
    assert headers[b"connection"] == b"close"
    assert app.calls == []


def test_a_body_not_complete_in_time_is_408_and_closes():
    scope = http_scope((b"content-length", b"50"))
    app, sent = run(scope, body_messages(b"x" * 10, b"x" * 10)[:1], timeout_s=0.05, stall=True)
    status, headers, body = answer(sent)
    assert status == 408 and body["code"] == "request_timeout"
    assert headers[b"connection"] == b"close"
    assert app.calls == []


@pytest.mark.parametrize(
    "scope",
    [
        http_scope((b"transfer-encoding", b"chunked")),
        http_scope(version="2"),  # HTTP/2 may send a body without declaring its length
    ],
    ids=["chunked", "http2-undeclared"],
)
def test_a_body_of_undeclared_length_not_complete_in_time_is_408(scope):
    app, sent = run(scope, body_messages(b"x", b"y")[:1], timeout_s=0.05, stall=True)
    assert answer(sent)[0] == 408 and app.calls == []


def test_a_body_that_arrives_slowly_but_in_time_is_taken():
    app, sent = App(), []
    chunks = body_messages(b"ab", b"cd")

    async def receive() -> dict:
        await asyncio.sleep(0.01)
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = http_scope((b"content-length", b"4"))
    asyncio.run(BufferedBody(app, max_bytes=LIMIT, timeout_s=5)(scope, receive, send))
    assert app.calls[0][1][0]["body"] == b"abcd" and sent[0]["status"] == 200


def test_a_client_gone_before_its_body_ends_gets_nothing_and_reaches_no_app():
    app, sent = run(http_scope((b"content-length", b"50")), body_messages(b"x", b"y")[:1])
    assert sent == [] and app.calls == []


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1, 2"])
def test_a_malformed_content_length_is_400(value):
    app, sent = run(http_scope((b"content-length", value)), body_messages(b""))
    status, _, body = answer(sent)
    assert status == 400 and body["code"] == "invalid"
    assert app.calls == []


def test_two_different_content_lengths_are_400():
    scope = http_scope((b"content-length", b"1"), (b"content-length", b"2"))
    app, sent = run(scope, body_messages(b"x"))
    assert answer(sent)[0] == 400 and app.calls == []


def test_a_websocket_passes_straight_through():
    scope = {"type": "websocket", "path": "/ws/v1/watch", "headers": []}
    connect = {"type": "websocket.connect"}
    app, sent = run(scope, [connect])
    ((seen, messages),) = app.calls
    assert seen is scope and messages == [connect] and sent == []


def test_the_node_application_buffers_http_within_the_settings(settings):
    from kvsite.asgi import application

    router = application.application_mapping["http"]
    assert isinstance(router, HttpRouter)  # event-loop streams first, then everything else
    http = router.default
    assert isinstance(http, BufferedBody)
    assert http.max_bytes == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert http.timeout_s == settings.KVS_HTTP_BODY_TIMEOUT
    assert not isinstance(application.application_mapping["websocket"], BufferedBody)
