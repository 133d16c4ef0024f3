"""The Redis cache backend shares one client per process, whatever the context."""

from __future__ import annotations

import contextvars

from kvsite.cache import SharedRedisCache

URL = "redis://127.0.0.1:9/0"  # never connected to: clients connect on first use


def test_cache_objects_of_every_context_share_one_client():
    def build():
        return SharedRedisCache(URL, {})._cache

    first = contextvars.copy_context().run(build)
    second = contextvars.copy_context().run(build)
    assert first is second


def test_different_servers_or_options_get_their_own_client():
    base = SharedRedisCache(URL, {})._cache
    assert SharedRedisCache("redis://127.0.0.1:9/1", {})._cache is not base
    assert SharedRedisCache(URL, {"OPTIONS": {"db": 2}})._cache is not base
