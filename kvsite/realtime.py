"""Plumbing shared by the watch and pub/sub sockets: refusal before accept, a bounded send queue
per socket, one channel-layer subscription per group and process, and group sends from synchronous
threads.

Fan-out: a socket does not receive group events through the channel layer itself. The process
holds one layer channel per group it has members in (`LocalGroups`), reads it with one task, and
hands each event to every member socket by a plain method call. A published message therefore
costs one Redis PUBLISH and one decode per process, then a queue put per socket; what each socket
costs per event is its sender task writing the frame.

Back-pressure: every frame a socket sends goes through its own queue of at most
KVS_WS_SEND_QUEUE frames, drained by one sender task. A client that reads slowly (or not at all)
only ever blocks its own sender task; what it costs the node is bounded by that queue. A feed that
can pause (the watch reads the change feed from its own cursor) waits for room with `offer_wait`;
a feed that cannot (pub/sub) uses `offer`, which drops a frame when the queue is full and later
sends `{"type": "overflow", "dropped": n}` in the gap's place.

Credentials: an open socket's credential is checked again while it stays open
(`kvsite.ws_recheck`); one that no longer stands, or no longer allows what the socket does,
closes it with 4401 or 4403, and nothing more is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time

import orjson
import redis
from asgiref.sync import SyncToAsync, async_to_sync
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from rest_framework.exceptions import APIException, AuthenticationFailed

from kvsite.exceptions import (
    InvalidJson,
    KvsError,
    NotFound,
    Unavailable,
    dependency_unavailable,
    error_body,
)
from kvsite.parsers import json_parse
from kvsite.perloop import PerLoop
from kvsite.ws_auth import WsRequest, credential_key, ws_request
from kvsite.ws_recheck import credential_rechecks
from ops.metrics import Counter, Gauge

from . import presence

log = logging.getLogger(__name__)

# Labelled by the socket's kind (`watch`, `pubsub`): a bounded set.
WS_OPEN = Gauge(
    "kvs_websockets_open",
    "Websockets open on this node, by kind.",
    ["kind"],
    multiprocess_mode="livesum",  # a process that has ended holds none open
)
WS_FRAMES_SENT = Counter(
    "kvs_websocket_frames_sent_total", "Frames sent to websocket clients, by kind.", ["kind"]
)
WS_FRAMES_DROPPED = Counter(
    "kvs_websocket_frames_dropped_total",
    "Frames dropped for clients that read too slowly (their send queue was full), by kind.",
    ["kind"],
)

DENIAL_EXTENSION = "websocket.http.response"
CLOSE_CODE_BASE = 4000  # refusal without the denial extension: close with 4000 + HTTP status
CLOSE_REASON_BYTES = 123  # the most a close frame's reason may hold
# Seconds a socket waits for the node's Redis to take its subscription before it is refused
# with 503 (Redis lost or frozen). Longer: rides out a slower Redis; shorter: answers sooner.
JOIN_TIMEOUT_S = 3.0


def frame_encode(data: object) -> str:
    """`data` as compact JSON text (integers beyond 64 bits take the standard library's path)."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class RealtimeConsumer(AsyncWebsocketConsumer):
    """A websocket consumer that refuses like the REST API and sends through a bounded queue."""

    kind = "other"  # what the metrics call these sockets

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups = []  # Channels' own group membership: unused, see group_join
        self._joined: list[str] = []
        self._queue: asyncio.Queue[str] | None = None
        self._dropped = 0
        self._tasks: list[asyncio.Task] = []
        self._credential_key = None  # set once accepted, if the credential is checked again
        self._recheck_at = math.inf  # when the credential is due to be checked again
        self._closing = False  # closed for its credential: nothing more is sent
        self._counted_open = False
        self._presence_id: str | None = None

    # --- opening and closing ---------------------------------------------------------------------

    def credential(self) -> WsRequest:
        """The socket's credential, request-shaped; AuthenticationFailed if one was refused."""
        if self.scope.get("auth_error"):
            raise AuthenticationFailed(self.scope["auth_error"])
        return ws_request(self.scope)

    async def refuse(self, error: Exception) -> None:
        """Refuse the handshake: an HTTP answer (401, 403, 400) with a JSON body where the server
        supports it (uvicorn), else a close before accept with code 4000 + status (daphne then
        answers 403)."""
        status, body = error_body(error)
        if DENIAL_EXTENSION not in (self.scope.get("extensions") or {}):
            await self.close(code=CLOSE_CODE_BASE + status)
            return
        payload = orjson.dumps(body)
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="kvsite"'))
        await self.base_send(
            {"type": "websocket.http.response.start", "status": status, "headers": headers}
        )
        await self.base_send({"type": "websocket.http.response.body", "body": payload})

    async def group_join(self, group: str) -> None:
        """Receive `group`'s events (through `group_event`) until the socket closes; once this
        returns, every event sent to the group reaches this socket. Unavailable (503) if the
        node's Redis does not take the subscription within JOIN_TIMEOUT_S (lost or frozen)."""
        self._joined.append(group)
        try:
            await asyncio.wait_for(local_groups().join(group, self), JOIN_TIMEOUT_S)
        except (TimeoutError, redis.RedisError) as error:
            raise Unavailable(
                "The node's Redis is unreachable; try again shortly.", reason="redis"
            ) from error

    async def websocket_connect(self, message) -> None:
        try:
            await super().websocket_connect(message)
        except Exception as error:
            await self.connect_failed(error)

    async def connect_failed(self, error: Exception) -> None:
        """`connect` raised: refuse (or, once accepted, close with 4503) when the node's Redis or
        database is unreachable, so that the client sees a 503 and tries again."""
        if not isinstance(error, KvsError) and dependency_unavailable(error) is None:
            raise error
        if self._counted_open:
            await self.close(code=CLOSE_CODE_BASE + 503, reason="unavailable")
        else:
            await self.refuse(error)

    def group_event(self, event: dict) -> None:
        """One event of a group this socket joined. Called by the process's reader of the group
        for every member in turn: it must not block (queue a frame, set an event)."""

    async def accept(self, subprotocol=None, headers=None) -> None:
        await self.transport_accept(subprotocol, headers)
        WS_OPEN.labels(self.kind).inc()
        self._counted_open = True
        self._queue = asyncio.Queue(maxsize=settings.KVS_WS_SEND_QUEUE)
        self.run_task(self._send_loop())
        self._credential_key = credential_key(self.scope)
        if self._credential_key is not None:
            self._recheck_at = credential_rechecks().add(self, self._credential_key)
        record = self.presence()
        if record is not None:
            self._presence_id = presence.book.opened(record)

    def presence(self) -> dict | None:
        """What the cluster's list of watchers shows of this socket once open (None: nothing):
        `kind` and `prefix` or `topic`, `since` (see `presence_base` for the user); the node and
        the time are added by kvsite.presence."""
        return None

    def presence_base(self) -> dict:
        user = self.scope.get("user")
        username = user.get_username() if user is not None and user.is_authenticated else None
        return {"username": username}

    async def transport_accept(self, subprotocol=None, headers=None) -> None:
        """Open the connection towards the client (a websocket's accept)."""
        await super().accept(subprotocol, headers)

    def transport_message(self, frame: str) -> dict:
        """The ASGI message that carries `frame` to the client."""
        return {"type": "websocket.send", "text": frame}

    def run_task(self, coroutine) -> asyncio.Task:
        """Run `coroutine` for as long as the socket is open."""
        task = asyncio.create_task(coroutine)
        self._tasks.append(task)
        return task

    async def websocket_disconnect(self, message) -> None:
        if self._presence_id is not None:
            presence.book.closed(self._presence_id)
            self._presence_id = None
        if self._counted_open:
            WS_OPEN.labels(self.kind).dec()
            self._counted_open = False
        if self._credential_key is not None:
            credential_rechecks().discard(self, self._credential_key)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        groups = local_groups()
        for group in self._joined:
            await groups.leave(group, self)
        await super().websocket_disconnect(message)  # calls disconnect()

    # --- keeping the credential honest ------------------------------------------------------------

    async def credential_current(self) -> bool:
        """Whether the socket may go on: its credential is checked again first if its last check
        has run out (one check for every socket of the credential); False once the socket is
        being closed for it."""
        if not self._closing and self._recheck_at <= time.monotonic():
            await credential_rechecks().renew()
        return not self._closing

    def credential_renewed(self, request: WsRequest) -> None:
        """Take the socket's credential as it stands now: raise (KvsError, APIException) if it no
        longer allows what the socket does, refresh what depends on it otherwise. Must not reach
        the database (the user's group names are loaded already)."""

    def credential_verdict(self, verdict: WsRequest | Exception | None, *, until: float) -> None:
        """A new check of the socket's credential: as it stands now, its refusal, or None (the
        check failed: carry on as before). The socket is closed with 4000 + the status REST
        would answer (4401, 4403); otherwise it is next checked at `until`."""
        if self._closing:
            return
        if isinstance(verdict, WsRequest):
            try:
                self.credential_renewed(verdict)
            except (KvsError, APIException) as error:
                verdict = error
            else:
                self.scope.update(user=verdict.user, auth=verdict.auth)
        if isinstance(verdict, Exception):
            self._credential_close(verdict)
        else:
            self._recheck_at = until

    def _credential_close(self, error: Exception) -> None:
        status, body = error_body(error)
        self._closing, self._recheck_at = True, 0.0
        credential_rechecks().discard(self, self._credential_key)
        reason = str(body["detail"]).encode()[:CLOSE_REASON_BYTES].decode(errors="ignore")
        self.run_task(self.close(code=CLOSE_CODE_BASE + status, reason=reason))

    # --- receiving -------------------------------------------------------------------------------

    async def websocket_receive(self, message) -> None:
        if self._recheck_at <= time.monotonic() and not await self.credential_current():
            return  # closed for its credential: the frame is not taken
        await super().websocket_receive(message)

    async def __call__(self, scope, receive, send) -> None:
        """Handle the server's messages for this socket, one at a time.

        Channels' own loop also listens on a layer channel of the socket's own (a Redis
        subscription per socket, and per frame a new task and an `asyncio.wait` over both
        sources). Group events reach these sockets through `LocalGroups` instead, so the loop
        only reads the socket: a publisher's frame is handled an event-loop turn sooner.
        """
        self.scope = scope
        self.channel_layer = None
        self.channel_name = None
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    async def dispatch(self, message: dict) -> None:
        """Call the message's handler, without Channels' close_old_connections before each one:
        that is a hop to the database thread for every frame and every group event (thousands a
        second under fan-out, all queued on one thread). These consumers reach the database only
        through database_sync_to_async, which closes old connections itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Decode a JSON frame (the REST API's rules: kvsite.parsers) and pass it to
        `receive_json`; answer an error frame otherwise, and keep the socket open."""
        try:
            content = json_parse(text_data if text_data is not None else bytes_data, what="frame")
        except InvalidJson as error:
            self.offer(frame_encode({"type": "error", **error.as_dict()}))
            return
        await self.receive_json(content)

    async def receive_json(self, content: object) -> None:
        """Handle a client's JSON frame (ignored unless a subclass says otherwise)."""

    # --- sending ---------------------------------------------------------------------------------

    def offer(self, frame: str) -> bool:
        """Queue `frame` if there is room; otherwise drop it and count it. Never waits."""
        if self._queue is None:
            return False
        self._overflow_note()
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._dropped += 1
            WS_FRAMES_DROPPED.labels(self.kind).inc()
            return False
        return True

    async def offer_wait(self, frame: str) -> None:
        """Queue `frame`, waiting until the client has read enough to make room."""
        await self._queue.put(frame)

    def _overflow_note(self) -> None:
        """Once there is room again, queue the notice of the frames dropped before it."""
        if self._dropped and not self._queue.full():
            self._queue.put_nowait(frame_encode({"type": "overflow", "dropped": self._dropped}))
            self._dropped = 0

    async def _send_loop(self) -> None:
        queue, send = self._queue, self.base_send  # the ASGI send itself: no wrappers per frame
        sent = WS_FRAMES_SENT.labels(self.kind)
        message = self.transport_message
        while True:
            frame = await queue.get()
            if self._recheck_at <= time.monotonic() and not await self.credential_current():
                return  # closed for its credential
            try:
                await send(message(frame))
            except Exception:  # the client went away; websocket_disconnect follows
                return
            sent.inc()
            self._overflow_note()


class NoRouteConsumer(RealtimeConsumer):
    """Refuses sockets opened on a path that serves none (404)."""

    async def connect(self) -> None:
        await self.refuse(NotFound("No websocket is served at this path."))


class HttpRouter:
    """HTTP requests to the paths of `streams` go to their ASGI app (served on the event loop);
    every other request goes to `default` (Django)."""

    def __init__(self, streams: dict, default) -> None:
        self.streams, self.default = streams, default

    async def __call__(self, scope, receive, send) -> None:
        app = self.streams.get(scope.get("path"), self.default)
        await app(scope, receive, send)


# --- One subscription per group and process ------------------------------------------------------


OUTBOX_SIZE = 1000


class LocalGroups:
    """The sockets of one event loop (one ASGI process) that joined each channel-layer group.

    The first member of a group opens a layer channel, adds it to the group and starts a task
    that reads it; every event read is handed to each member's `group_event`, in the order the
    layer delivered them. The last member to leave stops the task and leaves the group.
    """

    def __init__(self) -> None:
        self._members: dict[str, dict[int, RealtimeConsumer]] = {}
        self._readers: dict[str, tuple[str, asyncio.Task]] = {}
        self._changing = asyncio.Lock()  # joins and leaves, one at a time
        self._outbox: asyncio.Queue[tuple[str, dict]] | None = None
        self._outbox_task: asyncio.Task | None = None

    def members(self, group: str) -> int:
        return len(self._members.get(group, ()))

    async def join(self, group: str, consumer: RealtimeConsumer) -> None:
        async with self._changing:
            if group not in self._readers:
                layer = get_channel_layer()
                channel = await layer.new_channel("group.")
                await layer.group_add(group, channel)
                task = asyncio.create_task(self._read(group, channel))
                self._readers[group] = (channel, task)
            self._members.setdefault(group, {})[id(consumer)] = consumer

    async def leave(self, group: str, consumer: RealtimeConsumer) -> None:
        async with self._changing:
            members = self._members.get(group, {})
            members.pop(id(consumer), None)
            if members or group not in self._readers:
                return
            del self._members[group]
            channel, task = self._readers.pop(group)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await get_channel_layer().group_discard(group, channel)

    async def send(self, group: str, event: dict) -> None:
        """`group_send` in the order of the calls, without waiting for Redis: the event joins
        this loop's outbox (this waits only while OUTBOX_SIZE events are ahead of it), and one
        task sends them. A socket that publishes then takes its next frame at once instead of
        a round trip later, which a busy loop stretches to several milliseconds."""
        if self._outbox is None:
            self._outbox = asyncio.Queue(maxsize=OUTBOX_SIZE)
            self._outbox_task = asyncio.create_task(self._send_all(self._outbox))
        await self._outbox.put((group, event))

    async def _send_all(self, outbox: asyncio.Queue) -> None:
        layer = get_channel_layer()
        while True:
            group, event = await outbox.get()
            try:
                await layer.group_send(group, event)
            except Exception:  # at most once, like the rest of pub/sub
                log.warning("realtime: an event for %s was not sent", group, exc_info=True)

    async def _read(self, group: str, channel: str) -> None:
        layer = get_channel_layer()
        while True:
            try:
                event = await layer.receive(channel)
            except Exception:  # the layer lost Redis for a moment: it reconnects by itself
                log.warning("realtime: reading group %s failed", group, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            for consumer in tuple(self._members.get(group, {}).values()):
                try:
                    consumer.group_event(event)
                except Exception:
                    log.exception("realtime: a socket failed to take an event of %s", group)


local_groups = PerLoop(LocalGroups)  # the group members of the running event loop


# --- Group sends from synchronous code -----------------------------------------------------------

_thread = threading.local()


def layer_send(group: str, message: dict) -> None:
    """`group_send` from synchronous code.

    Called through sync_to_async (a consumer's database work, tests), the caller's event loop
    sends. Any other thread (HTTP request threads, Celery, background threads) keeps one event
    loop of its own and so one Redis connection: `async_to_sync` alone would start a new loop,
    thread and connection for every call.
    """
    layer = get_channel_layer()
    main = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if main is not None and main.is_running():
        async_to_sync(layer.group_send)(group, message)
        return
    loop = getattr(_thread, "loop", None)
    if loop is None:
        loop = _thread.loop = asyncio.new_event_loop()
    loop.run_until_complete(layer.group_send(group, message))
