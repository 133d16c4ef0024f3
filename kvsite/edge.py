"""The HTTP edge in ASGI terms: a request reaches Django only once its whole body has arrived.

HTTP requests run in Django on a fixed pool of threads (kvsite/asgi.py). A request whose body
trickles in would hold one of them while Django waits for it, and a few dozen such requests would
hold them all. `BufferedBody` reads the body on the event loop instead, where waiting costs no
thread, within a size limit (413) and a time limit (408), and only then hands the request on.
Both refusals close the connection: the rest of the body is not worth reading. A chunked body,
once whole, is handed on with the Content-Length it turned out to have, which is what the WSGI
side needs to read it at all.

This layer is plain ASGI, so it works under any ASGI server; the limits on the request line and
headers, which an application never sees until they are complete, live in the server's protocol
(kvsite/server.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyRefused(Exception):
    """The body cannot be taken: answer `status` with a JSON error and close the connection."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


def error_response(status: int, code: str, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a JSON error that closes the connection."""
    body = orjson.dumps({"detail": detail, "code": code})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


def body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None without one) and whether it has a Transfer-Encoding;
    BodyRefused(400) if the length is malformed."""
    lengths, coded = [], False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            coded = True
    if not lengths:
        return None, coded
    if len(set(lengths)) > 1 or not lengths[0].isdigit():
        raise BodyRefused(400, "invalid", "Malformed Content-Length.")
    return int(lengths[0]), coded


def _bodiless(scope: Scope, length: int | None, coded: bool) -> bool:
    """Whether the request has no body by HTTP/1's framing rules: then the server holds the
    whole request once it has the headers, and reading it cannot wait on the client."""
    return not length and not coded and scope.get("http_version") in ("1.1", "1.0")


async def read_body(receive: Receive, *, max_bytes: int) -> bytes:
    """The whole request body; BodyRefused(413) past `max_bytes`, ClientGone on disconnect."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(413, "too_large", "Request body too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BufferedBody:
    """ASGI middleware: read each HTTP request's body whole, in bounded time and size, before
    calling `app`; other scopes (websocket, lifespan) pass straight through."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            length, coded = body_framing(scope)
            if length is not None and length > self.max_bytes:
                raise BodyRefused(413, "too_large", "Request body too large.")
            if _bodiless(scope, length, coded):  # most requests: spare them the timer
                body = await read_body(receive, max_bytes=self.max_bytes)
            else:
                async with asyncio.timeout(self.timeout_s):
                    body = await read_body(receive, max_bytes=self.max_bytes)
        except BodyRefused as refused:
            await self._refuse(send, refused.status, refused.code, refused.detail)
            return
        except TimeoutError:
            detail = f"Request body not received within {self.timeout_s:g} s."
            await self._refuse(send, 408, "request_timeout", detail)
            return
        except ClientGone:
            return
        if body and length is None:  # chunked: tell the WSGI side how much there is to read
            scope = _with_length(scope, len(body))
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _refuse(send: Send, status: int, code: str, detail: str) -> None:
        headers, body = error_response(status, code, detail)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _with_length(scope: Scope, length: int) -> Scope:
    """A copy of `scope` whose headers declare `length` bytes of body and no transfer coding."""
    headers = [(n, v) for n, v in scope["headers"] if n != b"transfer-encoding"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the whole body as one message, then whatever the server sends next
    (which can only be `http.disconnect`)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
