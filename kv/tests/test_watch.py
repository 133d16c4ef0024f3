"""Announcing applied entries to watchers, and reading the change feed from a cursor."""

from __future__ import annotations

import json

import pytest
from django.test import TestCase

from kv import services, watch
from kv.acl import ANONYMOUS, SYSTEM
from kv.keys import InvalidKey
from kvsite.exceptions import InvalidInput

pytestmark = pytest.mark.django_db


@pytest.fixture
def gathered(monkeypatch):
    """What the background thread would announce, kept for the test instead."""
    monkeypatch.setattr(watch._announce_soon, "poke", lambda: None)
    watch._pending.clear()
    yield watch._pending
    watch._pending.clear()


def put(key: str, value: str = "1") -> int:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.entry_put(key=key, value=value, caller=SYSTEM)[0].revision


def test_every_applied_entry_is_gathered_for_announcement_after_commit(gathered):
    first, second = put("a"), put("b/c")
    assert gathered == [("a", first), ("b/c", second)]


def test_the_clusters_own_records_are_never_announced(gathered):
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.system_record_put(key="_sys/users/x", value='{"x":1}')
    assert gathered == []


def test_an_announcement_carries_the_highest_revision_and_each_key_once():
    message = watch.changes_message([("b", 3), ("a", 5), ("b", 4)])
    assert message == {"type": "kv.changed", "revision": 5, "keys": ["a", "b"]}


def test_a_very_large_batch_is_announced_without_keys():
    changes = [(f"k{i}", i) for i in range(watch.MAX_ANNOUNCED_KEYS + 1)]
    assert watch.changes_message(changes)["keys"] is None


@pytest.mark.parametrize(
    ("prefix", "keys", "touches"),
    [
        ("a/", ["a/1"], True),
        ("a/", ["ab", "b/a/"], False),
        ("a", ["ab"], True),
        ("", ["anything"], True),
        ("a/", None, True),
    ],
)
def test_which_announcements_touch_a_prefix(prefix, keys, touches):
    assert watch.watch_touches(prefix, keys) is touches


def test_watch_params_validate_prefix_and_since():
    assert watch.watch_params({}) == ("", None)
    assert watch.watch_params({"prefix": "a/", "since": "7"}) == ("a/", 7)
    with pytest.raises(InvalidKey):
        watch.watch_params({"prefix": "/a"})
    with pytest.raises(InvalidInput):
        watch.watch_params({"since": "x"})


def test_reading_from_a_cursor_pages_in_revision_order(monkeypatch):
    monkeypatch.setattr(watch, "READ_PAGE", 2)
    revisions = [put(f"p/{i}", str(i)) for i in range(5)]
    put("q/other")
    cursor, seen = 0, []
    while cursor < revisions[-1]:
        frames, cursor = watch.watch_read(
            prefix="p/", after=cursor, upto=revisions[-1], caller=ANONYMOUS
        )
        seen += [json.loads(f)["value"] for f in frames]
    assert seen == [0, 1, 2, 3, 4]
    assert cursor == revisions[-1]


def test_reading_stops_at_upto_even_if_later_changes_are_committed():
    first = put("p/1")
    put("p/2")
    frames, cursor = watch.watch_read(prefix="p/", after=0, upto=first, caller=ANONYMOUS)
    assert [json.loads(f)["key"] for f in frames] == ["p/1"]
    assert cursor == first
