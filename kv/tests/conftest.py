"""Fixtures of the store's websocket tests."""

from .realtime import channel_layer  # noqa: F401 (a fixture)
