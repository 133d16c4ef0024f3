"""From the event loop to Django's WSGI handler: one hand-off per request, or none.

A request's body is whole before it gets here (kvsite/edge.py). The bridge builds the WSGI
environ on the loop and then runs Django one of two ways:

- **on the loop thread**, for the requests `inline` picks when KVS_HTTP_INLINE_READS is on
  (the node's single-key reads and its health check: a few hundred microseconds of Python
  each, one indexed query that never waits on a lock). There is no hand-off at all: no
  thread to wake, no GIL to pass back and forth, no future to resolve. While such a request
  runs the worker's loop does nothing else, which is why only short, bounded requests
  qualify. On by default on SQLite: about a third less CPU per read (docs/performance.md).
- **on a fixed pool of threads** for everything else (writes, which may wait for the store's
  write lock; lists; admin pages; anything that may call other nodes). The thread runs the view
  and collects the whole answer, so the loop is woken once, when the answer is ready, rather than
  once per message as in a general ASGI-to-WSGI bridge. Streaming answers (backups, exports)
  are sent chunk by chunk from the thread, which waits for each send: the client's pace bounds
  what is held in memory.

Either way the view sees the same Django request and the same middleware: one code path. Long-
lived threads keep their database connections (CONN_MAX_AGE), and so does the loop thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .edge import Receive, Scope, Send

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

# Paths whose GET and HEAD requests are answered on the loop thread: one entry, or the health
# check. Not the list (`/api/v1/kv/` itself), whose pages may hold a thousand values.
INLINE_PREFIX = "/api/v1/kv/"
INLINE_PATHS = frozenset({"/health"})
INLINE_METHODS = frozenset({"GET", "HEAD"})


def inline_read(scope: Scope) -> bool:
    """Whether a request is a short read that is answered on the loop thread."""
    if scope["method"] not in INLINE_METHODS:
        return False
    path = scope["path"]
    return (path.startswith(INLINE_PREFIX) and len(path) > len(INLINE_PREFIX)) or (
        path in INLINE_PATHS
    )


def environ_build(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP scope whose whole body is `body` (PEP 3333: paths and
    header values as latin-1 strings)."""
    server = scope.get("server") or ("localhost", 80)
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    environ: dict[str, Any] = {
        "asgi.scope": scope,  # the raw path, for kvsite.middleware
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 0),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


@dataclass
class Answer:
    """A whole answer, collected where the view ran."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _headers(status: str, headers: list[tuple[str, str]]) -> tuple[int, list]:
    return int(status[:3]), [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]


def _is_whole(iterable: Iterable[bytes]) -> bool:
    """Whether the answer is in memory already: a Django response that is not streaming."""
    return getattr(iterable, "streaming", True) is False


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # disconnected: the view runs on what came
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class WsgiBridge:
    """ASGI application (HTTP scopes) running the WSGI `app`: the requests `inline` picks on
    the loop thread, the others on a pool of `threads` threads."""

    def __init__(
        self, app: WSGIApp, *, threads: int, inline: Callable[[Scope], bool] | None = None
    ) -> None:
        self.app = app
        self.inline = inline
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        environ = environ_build(scope, await _body(receive))
        loop = asyncio.get_running_loop()
        if self.inline is not None and self.inline(scope):
            answer = self._run_inline(environ)
            if isinstance(answer, _Started):  # not expected of a read: stream it from a thread
                await loop.run_in_executor(self.executor, _stream, answer, loop, send)
                return
        else:
            run = contextvars.copy_context().run
            answer = await loop.run_in_executor(self.executor, run, self._run, environ, loop, send)
            if answer is None:
                return
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body})

    def _run_inline(self, environ: dict) -> Answer | _Started:
        """Run the view here, on the loop thread. Django refuses database calls in a thread
        with a running event loop (they would block it unawares); this one blocks it knowingly,
        for a bounded read, so the loop is set aside for the call."""
        loop = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(None)
        try:
            return contextvars.copy_context().run(self._answer, environ)
        finally:
            asyncio.events._set_running_loop(loop)

    def _run(self, environ: dict, loop: asyncio.AbstractEventLoop, send: Send) -> Answer | None:
        """In a pool thread: the whole answer, or None once a streaming answer has been sent."""
        answer = self._answer(environ)
        if isinstance(answer, _Started):
            _stream(answer, loop, send)
            return None
        return answer

    def _answer(self, environ: dict) -> Answer | _Started:
        """Call the view: its whole answer if it is in memory, else the answer begun."""
        started = _Started()
        started.iterable = self.app(environ, started.start_response)
        if not _is_whole(started.iterable):
            return started
        try:
            body = b"".join([*started.written, *started.iterable])
        finally:
            started.close()
        return Answer(*_headers(*started.status_headers), body)


class _Started:
    """An answer the view has begun: its start_response arguments and its body iterable."""

    def __init__(self) -> None:
        self.status_headers: tuple = ("500 Internal Server Error", [])
        self.written: list[bytes] = []
        self.iterable: Iterable[bytes] = ()

    def start_response(self, status, headers, exc_info=None):
        self.status_headers = (status, headers)
        return self.written.append

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


def _stream(started: _Started, loop: asyncio.AbstractEventLoop, send: Send) -> None:
    """Send a streaming answer chunk by chunk from this (pool) thread, waiting for each send."""

    def sent(message) -> None:
        asyncio.run_coroutine_threadsafe(send(message), loop).result()

    try:
        chunks = iter(started.iterable)
        first = next(chunks, None)  # a generator may call start_response with its first chunk
        status, headers = _headers(*started.status_headers)
        sent({"type": "http.response.start", "status": status, "headers": headers})
        for chunk in [*started.written, *([first] if first is not None else [])]:
            if chunk:
                sent({"type": "http.response.body", "body": chunk, "more_body": True})
        for chunk in chunks:
            if chunk:
                sent({"type": "http.response.body", "body": chunk, "more_body": True})
        sent({"type": "http.response.body", "body": b""})
    finally:
        started.close()
