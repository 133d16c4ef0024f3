"""Open websockets keep only the access they still have.

A socket's credential (API token, JWT, session) is checked when the socket opens, and again at
least every KVS_TOKEN_CACHE_SECONDS while it stays open. A credential that no longer stands
(revoked, expired, its user deactivated or deleted, a JWT voided by a password change, a session
logged out) closes the socket with 4401; one that stands but no longer allows what the socket
does closes it with 4403 (the consumer's `credential_renewed` decides); otherwise the socket
carries on with the renewed credential, e.g. a watch filters by the user's current groups.

Cost: the sockets of an event loop are kept by credential, and one check serves every socket of
a credential. Checks fall due on a common beat (multiples of the interval on the process's
clock), so the credentials due together are checked together: one thread hop, a query per batch
of tokens, of JWTs' users and of group names. Two things start a check: a socket about to send a
frame, read the change feed or take a client frame once its check has run out
(`RealtimeConsumer.credential_current`; per frame that is one look at the clock), and one sweeper
task per loop, which checks whatever has run out meanwhile, so a silent socket is closed too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

from channels.db import database_sync_to_async
from django.conf import settings

from .perloop import PerLoop
from .ws_auth import CredentialKey, credentials_verify

if TYPE_CHECKING:
    from .realtime import RealtimeConsumer

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.1  # even with KVS_TOKEN_CACHE_SECONDS=0, no check per frame
MIN_SLEEP_S = 0.001  # the sweeper never spins


def recheck_interval() -> float:
    """Seconds a check of an open socket's credential holds."""
    return max(settings.KVS_TOKEN_CACHE_SECONDS, MIN_INTERVAL_S)


def next_beat(now: float) -> float:
    """When a credential checked at `now` is due again: the next multiple of the interval."""
    interval = recheck_interval()
    return (math.floor(now / interval) + 1) * interval


class CredentialRechecks:
    """The open sockets of one event loop that carry a credential, by credential, and when each
    credential is due to be checked again."""

    def __init__(self) -> None:
        self._sockets: dict[CredentialKey, dict[int, RealtimeConsumer]] = {}
        self._due: dict[CredentialKey, float] = {}
        self._checking: dict[CredentialKey, asyncio.Task] = {}
        self._sweeper: asyncio.Task | None = None

    def add(self, consumer: RealtimeConsumer, key: CredentialKey) -> float:
        """Check `consumer`'s credential `key` with the other sockets of it from now on; when it
        is due (the socket's credential was checked as it opened)."""
        self._sockets.setdefault(key, {})[id(consumer)] = consumer
        due = self._due.setdefault(key, next_beat(time.monotonic()))
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())
        return due

    def discard(self, consumer: RealtimeConsumer, key: CredentialKey) -> None:
        members = self._sockets.get(key)
        if members is None:
            return
        members.pop(id(consumer), None)
        if members:
            return
        del self._sockets[key]
        self._due.pop(key, None)
        sweeper = self._sweeper
        if not self._sockets and sweeper is not None and sweeper is not asyncio.current_task():
            sweeper.cancel()
            self._sweeper = None

    async def renew(self) -> None:
        """Check every credential that is due now (or join the checks under way): each socket's
        verdict is applied before this returns."""
        now = time.monotonic()
        due = [key for key, at in self._due.items() if at <= now]
        if due:
            await asyncio.shield(self._check(due))

    def _check(self, keys: list[CredentialKey]) -> asyncio.Future:
        waits = {self._checking[key] for key in keys if key in self._checking}
        fresh = [key for key in keys if key not in self._checking]
        if fresh:
            task = asyncio.create_task(self._verify(fresh))
            for key in fresh:
                self._checking[key] = task
            waits.add(task)
        return asyncio.gather(*waits)

    async def _verify(self, keys: list[CredentialKey]) -> None:
        try:
            verdicts = await database_sync_to_async(credentials_verify)(keys)
        except Exception:  # the database is away: sockets stay as they are until the next beat
            log.warning("realtime: could not check %d credentials again", len(keys), exc_info=True)
            verdicts = {}
        finally:
            for key in keys:
                self._checking.pop(key, None)
        due = next_beat(time.monotonic())
        for key in keys:
            members = self._sockets.get(key)
            if members is None:  # its sockets closed meanwhile
                continue
            self._due[key] = due
            for consumer in tuple(members.values()):
                try:
                    consumer.credential_verdict(verdicts.get(key), until=due)
                except Exception:
                    log.exception("realtime: a socket failed to take its credential's check")

    async def _sweep(self) -> None:
        """Check each credential as soon as it is due, whether its sockets send or not."""
        while self._due:
            now = time.monotonic()
            if any(at <= now for at in self._due.values()):
                await self.renew()
                continue
            await asyncio.sleep(max(min(self._due.values()) - now, MIN_SLEEP_S))
        if self._sweeper is asyncio.current_task():
            self._sweeper = None


credential_rechecks = PerLoop(CredentialRechecks)  # the sockets of the running event loop
