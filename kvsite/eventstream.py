"""Server-sent events: a realtime consumer's frames as a `text/event-stream` HTTP response.

`EventStream` is put before a websocket consumer class (`class X(EventStream, WatchConsumer)`) and
swaps the websocket transport for a streaming HTTP answer: the handshake becomes the request, the
accept the `200` head, each frame one event (`id:` the frame's revision, so that a client's
`Last-Event-ID` resumes, then `data:` the frame), a refusal the JSON error answer the REST API would
give, and a close for the credential a last `{"type": "error"}` event that ends the response.
Everything else (the queue and its back-pressure, the credential checks, the group fan-out) is
the consumer's own, so the stream costs a task on the event loop, never an HTTP thread.
"""

from __future__ import annotations

import asyncio

import orjson
from django.conf import settings
from rest_framework.exceptions import MethodNotAllowed

from kvsite.exceptions import error_body

from .realtime import CLOSE_CODE_BASE, RealtimeConsumer, frame_encode

KEEPALIVE = ""  # the frame that stands for a keep-alive comment
RETRY_MS = 1000  # how soon an EventSource reconnects after the stream breaks


def event_encode(frame: str) -> bytes:
    """One server-sent event carrying the JSON `frame`, its `id:` the frame's revision."""
    if frame == KEEPALIVE:
        return b": keepalive\n\n"
    revision = orjson.loads(frame).get("revision")
    data = frame.encode()
    return (
        b"id: %d\ndata: %s\n\n" % (revision, data)
        if revision is not None
        else b"data: %s\n\n" % data
    )


class EventStream(RealtimeConsumer):
    """The transport of a realtime consumer over one streaming HTTP response."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._started = False  # the request was taken
        self._answered = False  # the response head was sent
        self._ended = False  # the response was ended

    async def http_request(self, message: dict) -> None:
        if message.get("more_body") or self._started:
            return  # a GET carries no body worth reading
        self._started = True
        if self.scope.get("method") != "GET":
            await self.refuse(MethodNotAllowed(self.scope.get("method")))
            return
        try:
            await self.connect()
        except Exception as error:
            await self.connect_failed(error)

    async def http_disconnect(self, message: dict) -> None:
        await self.websocket_disconnect({"type": "websocket.disconnect", "code": 1000})

    async def transport_accept(self, subprotocol=None, headers=None) -> None:
        self._answered = True
        await self.base_send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),  # proxies: pass each event on at once
                ],
            }
        )
        await self.base_send(
            {"type": "http.response.body", "body": b"retry: %d\n\n" % RETRY_MS, "more_body": True}
        )
        self.run_task(self._keepalive())

    def transport_message(self, frame: str) -> dict:
        return {"type": "http.response.body", "body": event_encode(frame), "more_body": True}

    async def refuse(self, error: Exception) -> None:
        """Answer as the REST API would (400, 401, 403, 405), with a JSON error body."""
        status, body = error_body(error)
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kvsite"'))
        self._answered = self._ended = True
        await self.base_send({"type": "http.response.start", "status": status, "headers": headers})
        await self.base_send({"type": "http.response.body", "body": orjson.dumps(body)})

    async def close(self, code=None, reason=None) -> None:
        """End the stream; a close for the credential (4401, 4403) sends an error event first."""
        if self._ended or not self._answered:
            return
        self._ended = True
        body = b""
        if code is not None and code > CLOSE_CODE_BASE:
            error = {"type": "error", "status": code - CLOSE_CODE_BASE, "detail": reason or ""}
            body = b"data: %s\n\n" % frame_encode(error).encode()
        await self.base_send({"type": "http.response.body", "body": body, "more_body": False})

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(settings.KVS_SSE_KEEPALIVE)
            if self._queue is not None and not self._queue.full():
                self._queue.put_nowait(KEEPALIVE)
