"""Request rate limits per user and per anonymous client (DRF throttles over the node's Redis),
and the limits on failed logins."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
import unicodedata
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache as default_cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import AnonRateThrottle, BaseThrottle, UserRateThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _OpenWithoutRedis:
    """A request rate limit that lets requests through while the node's Redis (where the counts
    are) is unreachable: the store itself does not need Redis, and a limit on request rates is
    not a security boundary. The limits on failed logins are: they refuse (503) instead."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except (redis.ConnectionError, redis.TimeoutError):
            return True


class AnonThrottle(_OpenWithoutRedis, AnonRateThrottle):
    """Requests without a credential, counted per client address (KVS_THROTTLE_ANON)."""

    def get_rate(self):
        return settings.KVS_THROTTLE_ANON or None


class UserThrottle(_OpenWithoutRedis, UserRateThrottle):
    """Requests with a credential, counted per user (KVS_THROTTLE_USER)."""

    def get_rate(self):
        return settings.KVS_THROTTLE_USER or None


def rate_parse(rate: str) -> tuple[int, int] | None:
    """`(count, seconds)` of a rate such as "5/minute" (DRF's form); None for an empty one."""
    if not rate:
        return None
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0]]


@dataclass(frozen=True)
class _Counter:
    key: str
    limit: int
    window_ends: float


@dataclass
class LoginAttempt:
    """An attempt let through: counted until it turns out to have succeeded."""

    throttle: LoginThrottle
    counters: tuple[_Counter, ...]
    address: str

    def succeeded(self) -> None:
        """Take the attempt back: only failed attempts count against the limits."""
        self.throttle.uncount(self.counters)


class LoginThrottle(BaseThrottle):
    """Failed password logins and JWT refreshes, counted per username (KVS_LOGIN_THROTTLE_USER)
    and per client address (KVS_LOGIN_THROTTLE_ADDR) in fixed windows of the node's cache.

    An attempt is counted when it starts, before the password is checked, so that concurrent
    attempts cannot all slip under the limit; `LoginAttempt.succeeded` takes it back. Unknown
    usernames are counted like known ones. IPv6 clients are counted per /64, the block one
    subscriber usually holds.
    """

    cache = default_cache

    def _now(self) -> float:
        return time.time()

    def address(self, request) -> str:
        """The client address attempts from `request` are counted under."""
        ident = self.get_ident(request) or "unknown"
        try:
            ip = ipaddress.ip_address(ident)
        except ValueError:
            return ident
        if ip.version == 6:
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def attempt(self, request, *, username: str | None) -> LoginAttempt:
        """Count an attempt; raise Throttled (429, with the seconds to wait) past a limit."""
        now = self._now()
        address = self.address(request)
        counters = [self._counter("addr", address, settings.KVS_LOGIN_THROTTLE_ADDR, now)]
        if username is not None:
            name = unicodedata.normalize("NFKC", username).casefold()
            counters.append(self._counter("user", name, settings.KVS_LOGIN_THROTTLE_USER, now))
        counters = tuple(c for c in counters if c is not None)
        over = [c for c in counters if self._count(c) > c.limit]
        if over:
            self.uncount(counters)  # a refused attempt costs nothing, so it does not count
            wait = max(c.window_ends for c in over) - now
            raise Throttled(wait=max(1, math.ceil(wait)), detail="Too many failed logins.")
        return LoginAttempt(throttle=self, counters=counters, address=address)

    def uncount(self, counters: tuple[_Counter, ...]) -> None:
        for counter in counters:
            try:
                self.cache.decr(counter.key)
            except ValueError:  # its window is over already
                pass

    def _counter(self, kind: str, name: str, rate: str, now: float) -> _Counter | None:
        parsed = rate_parse(rate)
        if parsed is None:
            return None
        limit, seconds = parsed
        window = int(now // seconds)
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        return _Counter(
            key=f"kvs:login:{kind}:{digest}:{seconds}:{window}",
            limit=limit,
            window_ends=(window + 1) * seconds,
        )

    def _count(self, counter: _Counter) -> int:
        """Add one to the counter; the count."""
        timeout = max(1, math.ceil(counter.window_ends - self._now()))
        if self.cache.add(counter.key, 1, timeout):
            return 1
        try:
            return self.cache.incr(counter.key)
        except ValueError:  # expired between the two calls
            self.cache.add(counter.key, 1, timeout)
            return 1
