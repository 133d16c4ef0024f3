"""Helpers for websocket tests: the real ASGI application over an in-memory channel layer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import channels.db
import pytest
from asgiref.sync import async_to_sync
from channels.testing import ApplicationCommunicator, WebsocketCommunicator

T = TypeVar("T")
IN_MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def channel_layer(settings, monkeypatch):
    """An in-memory channel layer (no Redis): group sends reach sockets of this process.

    Also keeps the test's database connection open: database_sync_to_async closes connections
    that are not in autocommit mode, and a test runs inside a transaction (SQLite's in-memory
    database is never closed, PostgreSQL's connection would be).
    """
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    monkeypatch.setattr(channels.db, "close_old_connections", lambda **kwargs: None)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run an async scenario from a sync test. Database work that consumers hand to
    database_sync_to_async then runs on the test's own thread and connection, inside the test's
    transaction, so plain `django_db` tests see what the scenario writes and the other way round."""
    return async_to_sync(scenario)()


def socket(path: str, *, token: str | None = None, headers=()) -> WebsocketCommunicator:
    """A websocket client of the project's ASGI application (bearer token in a header)."""
    from kvsite.asgi import application

    sent = list(headers)
    if token is not None:
        sent.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application, path, headers=sent)


def handshake(path: str, *, headers=(), query: str = "") -> ApplicationCommunicator:
    """A raw client whose server supports refusing with an HTTP answer (as uvicorn does)."""
    from kvsite.asgi import application

    scope = {
        "type": "websocket",
        "path": path,
        "query_string": query.encode(),
        "headers": list(headers),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    return ApplicationCommunicator(application, scope)


async def frames(client: WebsocketCommunicator, count: int, timeout: float = 2) -> list[dict]:
    """The next `count` frames, decoded."""
    return [json.loads(await client.receive_from(timeout)) for _ in range(count)]


async def opened(client: WebsocketCommunicator) -> None:
    connected, code = await client.connect()
    assert connected, f"refused with {code}"


async def refused(client: WebsocketCommunicator) -> int:
    """The close code of a socket refused before it was accepted."""
    connected, code = await client.connect()
    assert not connected, "the socket was accepted"
    return code


async def closed_with(client: WebsocketCommunicator, timeout: float = 5) -> int:
    """The code the server closes the accepted `client` with, within `timeout` seconds; frames
    sent before the close are skipped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            message = await client.receive_output(max(deadline - loop.time(), 0.001))
        except TimeoutError:
            raise AssertionError(f"the socket was not closed within {timeout} s") from None
        if message["type"] == "websocket.close":
            return message.get("code", 1000)


async def frame_where(
    client: WebsocketCommunicator, condition: Callable[[dict], bool], timeout: float = 5
) -> dict:
    """The first frame, within `timeout` seconds, for which `condition` holds (others skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            frame = json.loads(await client.receive_from(max(deadline - loop.time(), 0.001)))
        except TimeoutError:
            raise AssertionError(f"no such frame within {timeout} s") from None
        if condition(frame):
            return frame


def handshake_refusal(path: str, *, token: str | None = None) -> tuple[int, str]:
    """(HTTP status, error code) with which a socket opened on `path` is refused, where the
    server supports refusing with an HTTP answer (as uvicorn does)."""
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]

    async def exchange():
        client = handshake(path, headers=headers)
        await client.send_input({"type": "websocket.connect"})
        start = await client.receive_output(2)
        assert start["type"] == "websocket.http.response.start", start
        body = await client.receive_output(2)
        return start["status"], json.loads(body["body"])["code"]

    return async_to_sync(exchange)()
