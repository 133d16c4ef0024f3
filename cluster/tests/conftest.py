"""Cluster test fixtures: a local-memory cache in place of the node's Redis."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _locmem_cache(settings):
    """Remembered signatures live in the cache; unit tests keep it in memory, empty each time."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    yield
    cache.clear()
