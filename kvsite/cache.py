"""The cache backend: Django's Redis cache with one client (and so one connection pool) per
process.

Django keeps cache objects per async context (asgiref's Local), and the HTTP thread pool runs
every request in a fresh copy of the server's context: with the stock backend each request built
a new client, a new pool and a new Redis connection (a connect, a handshake and a package-metadata
lookup per request). The pool is thread-safe, so every cache object of the process shares one.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients: dict[tuple, RedisCacheClient] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    @cached_property
    def _cache(self) -> RedisCacheClient:
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
            return client
