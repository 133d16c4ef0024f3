"""The web server's protocol: deadlines and limits on request headers and on unread answers,
driven as the event loop drives it (bytes in, a transport out)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from kvsite.server import EdgeHttpToolsProtocol

TIMEOUT_S = 0.05


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.KVS_HTTP_HEADER_TIMEOUT = TIMEOUT_S
    settings.KVS_HTTP_SEND_TIMEOUT = TIMEOUT_S
    settings.KVS_HTTP_MAX_HEADER_BYTES = 1024
    settings.KVS_HTTP_MAX_HEADERS = 10


class Transport:
    """The loop's side of one connection: what was written and whether it was closed."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.writes = 0
        self.closed = self.aborted = False

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        pass


async def ok_app(scope, receive, send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def connection(app=ok_app) -> tuple[EdgeHttpToolsProtocol, Transport]:
    config = Config(app=app, lifespan="off", log_level="critical")
    protocol = EdgeHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def settle(condition, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def status_of(transport: Transport) -> int:
    return int(bytes(transport.written).split(b" ", 2)[1])


def json_body(transport: Transport) -> dict:
    return orjson.loads(bytes(transport.written).split(b"\r\n\r\n", 1)[1])


def request(*headers: bytes, path: bytes = b"/x") -> bytes:
    return b"\r\n".join([b"GET " + path + b" HTTP/1.1", b"Host: h", *headers]) + b"\r\n\r\n"


def test_a_request_within_the_limits_is_served():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(request(*[b"X-%d: v" % i for i in range(9)]))  # 10 with Host
        await settle(lambda: transport.written)
        assert status_of(transport) == 200 and not transport.closed

    asyncio.run(scenario())


def test_one_header_more_than_the_limit_is_431_and_closed():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(request(*[b"X-%d: v" % i for i in range(10)]))
        assert status_of(transport) == 431 and transport.closed
        assert json_body(transport) == {
            "detail": "Too many header fields.",
            "code": "headers_too_large",
        }

    asyncio.run(scenario())


def test_a_header_block_over_the_size_limit_is_431():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(request(b"X-Big: " + b"a" * 1024))
        assert status_of(transport) == 431 and transport.closed

    asyncio.run(scenario())


def test_a_header_value_still_arriving_past_the_size_limit_is_431():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(b"GET /x HTTP/1.1\r\nHost: h\r\nX-Big: ")
        for _ in range(3):
            protocol.data_received(b"a" * 400)  # never complete: the parser holds it
        assert status_of(transport) == 431 and transport.closed

    asyncio.run(scenario())


def test_headers_not_complete_in_time_get_408_and_the_connection_closed():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(b"GET /x HTTP/1.1\r\nHost: h\r\n")
        await settle(lambda: transport.closed)
        assert status_of(transport) == 408
        assert json_body(transport)["code"] == "request_timeout"

    asyncio.run(scenario())


def test_a_connection_that_sends_nothing_is_closed_without_an_answer():
    async def scenario():
        _, transport = connection()
        await settle(lambda: transport.closed)
        assert transport.written == b""

    asyncio.run(scenario())


def test_the_header_deadline_does_not_cover_the_body_or_the_answer():
    async def scenario():
        release = asyncio.Event()

        async def slow_app(scope, receive, send):
            await release.wait()  # e.g. a body still arriving, or a slow request
            await ok_app(scope, receive, send)

        protocol, transport = connection(slow_app)
        protocol.data_received(request())
        await asyncio.sleep(TIMEOUT_S * 4)
        assert not transport.closed
        release.set()
        await settle(lambda: transport.written)
        assert status_of(transport) == 200 and not transport.closed

    asyncio.run(scenario())


def test_a_later_request_on_a_kept_alive_connection_has_its_own_deadline():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(request())
        await settle(lambda: transport.written)
        await asyncio.sleep(TIMEOUT_S * 2)  # idle between requests: uvicorn's keep-alive, 5 s
        assert not transport.closed
        transport.written.clear()
        protocol.data_received(b"GET /x HTTP/1.1\r\n")
        await settle(lambda: transport.closed)
        assert status_of(transport) == 408

    asyncio.run(scenario())


def test_a_malformed_request_is_a_json_400():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(b"NOT HTTP\r\n\r\n")
        assert status_of(transport) == 400 and transport.closed
        assert json_body(transport)["code"] == "invalid"

    asyncio.run(scenario())


def test_an_answer_the_client_does_not_read_is_dropped_after_the_send_timeout():
    async def scenario():
        protocol, transport = connection()
        protocol.pause_writing()  # the transport's buffer is full
        await settle(lambda: transport.aborted)

    asyncio.run(scenario())


def test_an_answer_the_client_reads_again_in_time_is_not_dropped():
    async def scenario():
        protocol, transport = connection()
        protocol.data_received(request())
        await settle(lambda: transport.written)
        protocol.pause_writing()
        protocol.resume_writing()
        await asyncio.sleep(TIMEOUT_S * 2)
        assert not transport.aborted

    asyncio.run(scenario())


async def path_app(scope, receive, send) -> None:
    """Answers the request's path, with its length."""
    await receive()
    body = scope["path"].encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_an_answer_is_sent_in_one_write():
    async def scenario():
        protocol, transport = connection(path_app)
        protocol.data_received(request())
        await settle(lambda: transport.written)
        assert transport.writes == 1
        assert status_of(transport) == 200 and bytes(transport.written).endswith(b"\r\n\r\n/x")

    asyncio.run(scenario())


def test_a_streamed_answer_is_sent_whole_and_in_order_before_the_connection_closes():
    async def streaming_app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)  # the next part comes in a later step of the loop
        await send({"type": "http.response.body", "body": b"three"})

    async def scenario():
        protocol, transport = connection(streaming_app)
        protocol.data_received(request(b"Connection: close"))
        await settle(lambda: transport.closed)  # Transport refuses a write after close
        body = bytes(transport.written).split(b"\r\n\r\n", 1)[1]
        assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
        assert transport.writes == 3

    asyncio.run(scenario())


def test_pipelined_answers_keep_the_order_of_their_requests():
    async def scenario():
        protocol, transport = connection(path_app)
        protocol.data_received(request(path=b"/a") + request(path=b"/b") + request(path=b"/c"))
        await settle(lambda: bytes(transport.written).count(b"HTTP/1.1 200") == 3)
        written = bytes(transport.written)
        assert written.index(b"\r\n\r\n/a") < written.index(b"\r\n\r\n/b")
        assert written.index(b"\r\n\r\n/b") < written.index(b"\r\n\r\n/c")
        assert not transport.closed

    asyncio.run(scenario())


def test_what_is_pending_is_sent_before_a_shutdown_or_a_refusal_closes_the_connection():
    async def scenario():
        protocol, transport = connection()
        protocol._corked.write(b"the end of an answer")  # completed in this step of the loop
        protocol.shutdown()
        assert transport.written == b"the end of an answer" and transport.closed

        protocol, transport = connection()
        protocol._corked.write(b"HTTP/1.1 200 OK\r\n\r\nok")
        protocol.data_received(b"GET /x HTTP/1.1\r\n" + b"X-Big: " + b"v" * 2000 + b"\r\n")
        assert bytes(transport.written).startswith(b"HTTP/1.1 200 OK\r\n\r\nokHTTP/1.1 431")
        assert transport.closed

    asyncio.run(scenario())
