"""Consumers of the store: the watch over a websocket and over server-sent events (protocol
adapters over kv.watch)."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from rest_framework.exceptions import APIException

from accounts.permissions import key_scope_check
from accounts.scopes import READ
from kvsite.eventstream import EventStream
from kvsite.exceptions import KvsError, dependency_unavailable
from kvsite.realtime import RealtimeConsumer, frame_encode
from kvsite.ws_auth import WsRequest, query_params

from .callers import request_caller
from .watch import (
    CHANGES_GROUP,
    recent_changes,
    watch_head,
    watch_params,
    watch_read,
    watch_touches,
)

# Announcements travel over Redis PUB/SUB, at most once: a socket that heard nothing for this long
# reads the node's head itself, so a lost announcement delays an event by at most this much.
RECHECK_S = 10.0
RETRY_S = 0.5  # how soon a watch reads again after its node's database or Redis failed it


class WatchConsumer(RealtimeConsumer):
    """`/ws/v1/watch?prefix=p[&since=rev]`: the changes since `since`, then `ready`, then each
    change as it is applied, of the keys under the prefix that the caller may read (the caller as
    the socket's credential stands now: its user's current groups)."""

    kind = "watch"

    async def connect(self) -> None:
        try:
            request = self.credential()
            self.prefix, since = watch_params(self.watch_query())
            key_scope_check(request, READ, self.prefix)
        except (KvsError, APIException) as error:
            await self.refuse(error)
            return
        self.caller = await database_sync_to_async(request_caller)(request)
        self.upto, self.wake = 0, asyncio.Event()  # what group events touch, from the join on
        # Join before reading the head: whatever commits after the head is announced to us.
        await self.group_join(CHANGES_GROUP)
        head, node = await database_sync_to_async(watch_head)()
        self.cursor = head if since is None else min(since, head)
        self.upto = max(self.upto, head)
        self.since = since
        await self.accept()
        self.run_task(self._follow(head, node))

    def presence(self) -> dict:
        return {**self.presence_base(), "kind": "watch", "prefix": self.prefix, "since": self.since}

    def watch_query(self) -> dict[str, str]:
        """The watch's parameters: `prefix` and `since`."""
        return query_params(self.scope)

    def credential_renewed(self, request: WsRequest) -> None:
        key_scope_check(request, READ, self.prefix)
        self.caller = request_caller(request)

    def group_event(self, event: dict) -> None:
        self.upto = max(self.upto, event["revision"])
        if watch_touches(self.prefix, event["keys"]):
            self.wake.set()

    async def _follow(self, head: int, node: str) -> None:
        """Replay up to the head, say ready, then follow the announcements. While the node's
        database or Redis is unreachable, the watch waits and tries again: it stays open and
        resumes from its cursor, so nothing is skipped."""
        await self._retrying(self._catch_up, head)
        await self.offer_wait(frame_encode({"type": "ready", "revision": head, "node": node}))
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), RECHECK_S)
            except TimeoutError:  # quiet, or an announcement was lost: look at the head
                head = (await self._retrying(database_sync_to_async(watch_head)))[0]
                self.upto = max(self.upto, head)
            self.wake.clear()
            await self._retrying(self._catch_up, self.upto)

    async def _retrying(self, work, *args):
        """`await work(*args)`, again every RETRY_S while the node's database or Redis is
        unreachable."""
        while True:
            try:
                return await work(*args)
            except Exception as error:
                if dependency_unavailable(error) is None:
                    raise
            await asyncio.sleep(RETRY_S)

    async def _catch_up(self, upto: int) -> None:
        recent = recent_changes()
        while self.cursor < upto:
            if not await self.credential_current():  # the caller is that of a recent check
                return
            shared = await recent.read(
                prefix=self.prefix, after=self.cursor, upto=upto, caller=self.caller
            )
            frames, self.cursor = shared or await database_sync_to_async(watch_read)(
                prefix=self.prefix, after=self.cursor, upto=upto, caller=self.caller
            )
            for frame in frames:
                await self.offer_wait(frame)  # a slow reader pauses the feed; nothing is lost


class WatchStreamConsumer(EventStream, WatchConsumer):
    """`GET /api/v1/watch?prefix=p[&since=rev]`: the same watch as server-sent events, each event's
    `id:` its revision; a reconnecting client's `Last-Event-ID` stands for `since`."""

    kind = "watch-sse"

    def watch_query(self) -> dict[str, str]:
        params = query_params(self.scope)
        if "since" not in params:
            for name, value in self.scope.get("headers", []):
                if name.lower() == b"last-event-id" and value.strip():
                    params["since"] = value.decode("latin-1").strip()
        return params
