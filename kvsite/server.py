"""The node's web server: uvicorn, with bounds on what a client may make it wait for.

Everything specific to the server is here; the body is bounded in ASGI terms (kvsite/edge.py).
uvicorn's httptools protocol puts no limit on the request line and headers and no deadline on
them, so a connection may hold on forever before sending a request, or send an endless header
block. `EdgeHttpToolsProtocol` adds, per request:

- a deadline for the request line and headers (KVS_HTTP_HEADER_TIMEOUT), counted from the
  connection's opening or from the first byte of a later request on it; past it the connection
  is closed, with a 408 when part of a request had come;
- a size limit for them (KVS_HTTP_MAX_HEADER_BYTES) and a count limit (KVS_HTTP_MAX_HEADERS):
  431 and the connection closed;
- a deadline for a client that stops reading its answer (KVS_HTTP_SEND_TIMEOUT): the connection
  is dropped once the answer has waited that long with the send buffer full.

It also sends an answer's status line, headers and body in one write (`_Corked`) where uvicorn
makes two: one system call and one packet per answer instead of two (GET at 32 connections:
+25% in an A/B, docs/performance.md).

Idle keep-alive connections are closed by uvicorn itself after KEEP_ALIVE_S.
"""

from __future__ import annotations

import asyncio
import os
import resource
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .edge import error_response
from .uptime import STARTED_ENV, clock

APP = "kvsite.asgi:application"
KEEP_ALIVE_S = 5  # uvicorn's default: seconds an idle keep-alive connection is kept
OPEN_FILES_WANTED = 65536  # open files (sockets) per process, if the hard limit allows


@dataclass(frozen=True)
class HeaderLimits:
    """What a connection may take and send before its request is handed to the application."""

    timeout_s: float
    max_bytes: int
    max_count: int
    send_timeout_s: float

    @classmethod
    def from_settings(cls) -> HeaderLimits:
        """The limits in force (read per connection; Django keeps settings it has read)."""
        from django.conf import settings  # set up by the time a worker accepts connections

        return cls(
            timeout_s=settings.KVS_HTTP_HEADER_TIMEOUT,
            max_bytes=settings.KVS_HTTP_MAX_HEADER_BYTES,
            max_count=settings.KVS_HTTP_MAX_HEADERS,
            send_timeout_s=settings.KVS_HTTP_SEND_TIMEOUT,
        )


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing a header block over the limits."""


class _Corked:
    """The connection as a response cycle writes to it: what the cycle writes in one step of
    the loop (the status line and headers, then the body) is sent in one write, at the end of
    the step. Closing sends what is pending first."""

    __slots__ = ("transport", "loop", "pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport, self.loop = transport, loop
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(data)

    def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class EdgeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines and size limits on request headers."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limits = HeaderLimits.from_settings()
        self._awaiting_headers = True  # between requests too: what comes next is a header block
        self._header_bytes = 0  # bytes received since this request's header block began
        self._header_size = 0  # request line and header fields parsed so far
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._corked = _Corked(transport, self.loop)
        self._arm_header_timer()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_send_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._awaiting_headers:
            self._header_bytes += len(data)
            if self._header_timer is None:
                self._arm_header_timer()
        super().data_received(data)
        # A header value is handed over only once complete: count what is still pending.
        if self._awaiting_headers and self._header_bytes > self.limits.max_bytes:
            self._refuse(431, "headers_too_large", "Request header fields too large.")

    def shutdown(self) -> None:
        self._corked.flush()  # an answer completed in this step of the loop goes out first
        super().shutdown()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self._send_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send_timer()

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_size = self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._count_header(len(url), fields=0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value) + 4, fields=1)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self._awaiting_headers = False
        self._header_bytes = 0
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.transport is self.transport:
            self.cycle.transport = self._corked  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True

    # Refusals

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser refused (or a callback stopped) as JSON, and close."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            self._refuse(400, "invalid", "Invalid HTTP request.")

    def _count_header(self, size: int, *, fields: int) -> None:
        self._header_size += size
        self._header_count += fields
        too_large = self._header_size > self.limits.max_bytes
        if too_large or self._header_count > self.limits.max_count:
            detail = "Request header fields too large." if too_large else "Too many header fields."
            self._refusal = (431, "headers_too_large", detail)
            raise _HeadersTooLarge()  # the parser stops and calls send_400_response

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer `status` with a JSON error (unless an answer is under way) and close."""
        if self.transport.is_closing():
            return
        self._corked.flush()  # the previous answer before this refusal
        if self.cycle is None or self.cycle.response_complete:
            headers, body = error_response(status, code, detail)
            content = [STATUS_LINE[status]]
            for name, value in [*self.server_state.default_headers, *headers]:
                content += [name, b": ", value, b"\r\n"]
            self.transport.write(b"".join([*content, b"\r\n", body]))
        self.transport.close()

    # Timers

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._header_bytes == 0:  # nothing of a request came: nobody to answer
            self.transport.close()
            return
        detail = f"Request headers not received within {self.limits.timeout_s:g} s."
        self._refuse(408, "request_timeout", detail)

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_stalled(self) -> None:
        # abort(), not close(): close() would wait for the buffer the client does not read.
        self._send_timer = None
        self.transport.abort()


def _raise_open_files_limit() -> None:
    """Let this process (and its workers) open as many sockets as the hard limit allows, so
    that idle or slow connections run out of deadlines before the server runs out of files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass  # keep the limit we were given


def serve(*, host: str, port: int, workers: int, app: str = APP) -> None:
    """Serve the node (HTTP and websockets) on host:port with `workers` processes, until
    SIGINT or SIGTERM. `app` names another ASGI application to serve the same way (the floor
    benchmark's bare answer)."""
    os.environ[STARTED_ENV] = repr(clock())  # inherited by every worker: the node's uptime
    _raise_open_files_limit()
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        http=f"{__name__}:EdgeHttpToolsProtocol",
        timeout_keep_alive=KEEP_ALIVE_S,
        lifespan="off",
        # No per-message compression: it costs more CPU per frame than it saves on loopback
        # and LANs.
        ws_per_message_deflate=False,
        # At info uvicorn logs websocket URLs, which may carry ?token=.
        log_level="warning",
        access_log=False,
    )
