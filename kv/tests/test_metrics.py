"""Writes are counted by origin once they commit: local, or replicated from a peer."""

import uuid

import pytest

from kv import services
from kv.hlc import hlc_from_ms, wall_ms
from kv.versions import Version
from ops.tests.helpers import value

pytestmark = pytest.mark.django_db


def writes(origin: str) -> float:
    return value("kvs_writes_total", origin=origin)


def test_local_writes_count_as_local(django_capture_on_commit_callbacks):
    local, replicated = writes("local"), writes("replicated")
    with django_capture_on_commit_callbacks(execute=True):
        services.entry_put(key="a", value="1")
        services.entry_put(key="a", value="2")
        services.entry_delete(key="a")
    assert writes("local") == local + 3
    assert writes("replicated") == replicated


def test_versions_from_peers_count_as_replicated_and_only_when_applied(
    django_capture_on_commit_callbacks,
):
    local, replicated = writes("local"), writes("replicated")
    v = Version("k", uuid.uuid4(), hlc_from_ms(wall_ms()), "peer", 1, value="1")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.versions_apply([v]) == 1
        assert services.versions_apply([v]) == 0  # not newer: nothing applied, nothing counted
    assert writes("replicated") == replicated + 1
    assert writes("local") == local


def test_a_write_rolled_back_is_not_counted():
    local = writes("local")
    services.entry_put(key="a", value="1")  # the test's transaction never commits
    assert writes("local") == local
