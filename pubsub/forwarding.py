"""Forwarding published messages to every alive peer, once, off the publisher's path.

A publish only appends to a queue. A dispatcher thread looks up the alive peers (at most once a
second) and hands the messages to one outbox per peer; each outbox has a thread of its own that
posts batches to the peer's signed internal endpoint. A slow or dead peer therefore delays only its
own outbox, which holds at most KVS_PUBSUB_FORWARD_QUEUE messages (the oldest are dropped beyond
that). A failed post is tried once more — the peer drops the copy if the first one had arrived
after all — and then given up: pub/sub keeps no messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import orjson
from django.conf import settings
from django.db import close_old_connections

from cluster.membership import MemberState
from cluster.node import local_node
from cluster.selectors import members_alive
from cluster.transport import HttpTransport, Transport, TransportError
from kvsite.debounce import Debounce
from kvsite.parsers import json_depth_beyond
from kvsite.realtime import frame_encode

from .metrics import forward_dropped_counted, forwarded_counted

log = logging.getLogger(__name__)

PUBSUB_PATH = "/cluster/internal/pubsub"
FORWARD_BATCH = 200
PEERS_RECHECK_S = 1.0
SEND_ATTEMPTS = 2


class PeerOutbox:
    """The messages waiting for one peer, posted in batches by a thread of their own."""

    def __init__(
        self, url: str, transport: Transport, *, node_id: str, size: int, gather_s: float = 0
    ) -> None:
        self.url = url
        self.node_id = node_id
        self._gather_s = gather_s
        self._transport = transport
        self._waiting: deque[orjson.Fragment] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._dropped = 0
        self._flush_soon = Debounce(self.flush, delay_s=0)

    def put(self, messages: list[orjson.Fragment]) -> None:
        with self._lock:
            overflow = len(self._waiting) + len(messages) - self._waiting.maxlen
            self._dropped += max(0, overflow)
            self._waiting.extend(messages)
        self._flush_soon.poke()

    def flush(self) -> None:
        """Post everything waiting, a batch at a time, after gathering for `gather_s`."""
        if self._gather_s:
            time.sleep(self._gather_s)
        while True:
            with self._lock:
                batch = [
                    self._waiting.popleft() for _ in range(min(FORWARD_BATCH, len(self._waiting)))
                ]
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning("pub/sub: %d messages for %s dropped (outbox full)", dropped, self.url)
                forward_dropped_counted(peer=self.node_id, reason="overflow", messages=dropped)
            if not batch:
                return
            self._post(batch)

    def _post(self, batch: list[orjson.Fragment]) -> None:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                self._transport.send(self.url, PUBSUB_PATH, {"messages": batch}, to=self.node_id)
            except TransportError as error:
                if attempt == SEND_ATTEMPTS:
                    log.warning("pub/sub: %d messages not forwarded: %s", len(batch), error)
                    forward_dropped_counted(peer=self.node_id, reason="failed", messages=len(batch))
            else:
                forwarded_counted(peer=self.node_id, messages=len(batch))
                return


class Forwarder:
    """Sends each message handed to `forward` once to every peer alive at that moment."""

    def __init__(
        self,
        *,
        peers: Callable[[], list[MemberState]] | None = None,
        transport: Callable[[], Transport] | None = None,
    ) -> None:
        self._peers_source = peers or members_alive
        self._transport_source = transport or _http_transport
        self._transport: Transport | None = None
        self._pending: deque[dict] = deque()
        self._outboxes: dict[tuple[str, str], PeerOutbox] = {}  # by (url, node id)
        self._peers: tuple[float, list[MemberState]] = (0.0, [])
        self._dispatch_soon = Debounce(self._dispatch_safely, delay_s=0)

    def forward(self, message: dict) -> None:
        """Queue `message` for every alive peer; returns at once."""
        self._pending.append(message)
        self._dispatch_soon.poke()

    def _dispatch_safely(self) -> None:
        try:
            self._dispatch()
        except Exception:  # the database may be busy: the next publish tries again
            log.warning("pub/sub: could not forward messages", exc_info=True)

    def _dispatch(self) -> None:
        messages = []
        while self._pending:
            encoded = message_encode(self._pending.popleft())
            if encoded is not None:
                messages.append(encoded)
        if not messages:
            return
        for peer in self._alive():
            self._outbox(peer).put(messages)

    def _alive(self) -> list[MemberState]:
        deadline, peers = self._peers
        now = time.monotonic()
        if now >= deadline:
            close_old_connections()  # a long-lived thread: drop a connection the server closed
            peers = self._peers_source()
            self._peers = (now + PEERS_RECHECK_S, peers)
        return peers

    def _outbox(self, peer: MemberState) -> PeerOutbox:
        outbox = self._outboxes.get((peer.url, peer.node_id))
        if outbox is None:
            if self._transport is None:
                self._transport = self._transport_source()
            outbox = self._outboxes[(peer.url, peer.node_id)] = PeerOutbox(
                peer.url,
                self._transport,
                node_id=peer.node_id,
                size=settings.KVS_PUBSUB_FORWARD_QUEUE,
                gather_s=settings.KVS_PUBSUB_FORWARD_GATHER,
            )
        return outbox


def message_encode(message: dict) -> orjson.Fragment | None:
    """`message` as the JSON text peers receive (encoded once for all of them), or None if no
    peer would take it: each message of a batch is encoded alone, so that one that cannot be
    does not fail the post of every other. (Publishes are checked at the door; this is the net.)
    """
    try:
        text = frame_encode(message).encode()
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is None or json_depth_beyond(text, settings.KVS_MAX_JSON_DEPTH):
        log.warning(
            "pub/sub: message %s not forwarded: it cannot be sent as JSON", message.get("id")
        )
        return None
    return orjson.Fragment(text)


def _http_transport() -> Transport:
    return HttpTransport(
        node_id=local_node().node_id,
        secret=settings.KVS_CLUSTER_SECRET,
        timeout_s=settings.KVS_PUBSUB_FORWARD_TIMEOUT,
    )


_forwarder = Forwarder()


def forward_soon(message: dict) -> None:
    """Forward `message` to every alive peer, from this process's forwarding threads."""
    _forwarder.forward(message)
