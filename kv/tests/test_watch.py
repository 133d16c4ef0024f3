"""Announcing applied entries to watchers, and reading the change feed from a cursor."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import TestCase

from kv import services, watch
from kv.acl import ANONYMOUS, SYSTEM
from kv.keys import InvalidKey
from kvsite.exceptions import InvalidInput

from .realtime import run

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


# --- The shared window of recent changes ---------------------------------------------------------


@pytest.fixture
def reads(monkeypatch, gathered, channel_layer):
    """The calls of changes_under (each one a database read); nothing announced, and the
    connection kept open through database_sync_to_async (see channel_layer)."""
    calls = []
    original = watch.changes_under

    def counted(**kw):
        calls.append(kw)
        return original(**kw)

    monkeypatch.setattr(watch, "changes_under", counted)
    return calls


aput = database_sync_to_async(put)


def keys_of(frames: list[str]) -> list[str]:
    return [json.loads(f)["key"] for f in frames]


def test_sockets_reading_the_same_changes_share_one_database_read(reads):
    head = put("a/1")
    recent = watch.RecentChanges()

    async def scenario():
        await recent.read(prefix="", after=head, upto=head, caller=ANONYMOUS)  # opens the window
        revisions = [await aput("a/2"), await aput("b/1"), await aput("a/3")]
        answers = [
            await recent.read(prefix=prefix, after=head, upto=revisions[-1], caller=ANONYMOUS)
            for prefix in ("a/", "b/", "", "a/", "c/")
        ]
        return revisions[-1], answers

    upto, answers = run(scenario)
    assert len(reads) == 1 and reads[0]["prefix"] == "" and reads[0]["after"] == head
    assert [keys_of(frames) for frames, _ in answers] == [
        ["a/2", "a/3"],
        ["b/1"],
        ["a/2", "b/1", "a/3"],
        ["a/2", "a/3"],
        [],
    ]
    assert {cursor for _, cursor in answers} == {upto}


def opened_window() -> watch.RecentChanges:
    """A window that starts at revision 0 (a fresh one starts where it is first asked to)."""
    recent = watch.RecentChanges()

    async def open_it():
        await recent.read(prefix="", after=0, upto=0, caller=ANONYMOUS)

    run(open_it)
    return recent


def test_the_window_filters_by_the_callers_read_permission(reads, root_user):
    recent = opened_window()
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.entry_put(key="s/open", value="1", caller=SYSTEM)
        secret, _ = services.entry_put(key="s/secret", value="2", caller=SYSTEM)
        secret = services.entry_meta_set(
            key="s/secret", owner="root", mode=0xF00, fields={"owner", "mode"}, caller=SYSTEM
        )

    async def scenario():
        anonymous = await recent.read(prefix="s/", after=0, upto=secret.revision, caller=ANONYMOUS)
        system = await recent.read(prefix="s/", after=0, upto=secret.revision, caller=SYSTEM)
        return anonymous[0], system[0]

    anonymous, system = run(scenario)
    assert keys_of(anonymous) == ["s/open"] and keys_of(system) == ["s/open", "s/secret"]


def test_a_cursor_older_than_the_window_reads_the_database_itself(reads, monkeypatch):
    monkeypatch.setattr(watch, "WINDOW_ENTRIES", 3)
    recent = watch.RecentChanges()

    async def scenario():
        await recent.read(prefix="", after=0, upto=0, caller=ANONYMOUS)
        revisions = [await aput(f"k/{i}") for i in range(6)]
        await recent.read(prefix="", after=0, upto=revisions[-1], caller=ANONYMOUS)
        late = await recent.read(prefix="", after=0, upto=revisions[-1], caller=ANONYMOUS)
        recent_enough = await recent.read(
            prefix="", after=revisions[2], upto=revisions[-1], caller=ANONYMOUS
        )
        return revisions, late, recent_enough

    revisions, late, recent_enough = run(scenario)
    assert recent.start == revisions[2]  # the three newest kept
    assert late is None
    assert keys_of(recent_enough[0]) == ["k/3", "k/4", "k/5"]


def test_a_window_far_behind_starts_afresh_instead_of_reading_everything_between(
    reads, monkeypatch
):
    monkeypatch.setattr(watch, "WINDOW_GAP", 3)
    recent = watch.RecentChanges()

    async def scenario():
        first = await recent.read(prefix="", after=0, upto=0, caller=ANONYMOUS)  # opens it at 0
        revisions = [await aput(f"k/{i}") for i in range(5)]
        behind = await recent.read(prefix="k/", after=0, upto=revisions[-1], caller=ANONYMOUS)
        more = await aput("k/5")
        after = await recent.read(prefix="k/", after=revisions[-1], upto=more, caller=ANONYMOUS)
        return first, revisions, behind, after

    first, revisions, behind, after = run(scenario)
    assert first == ([], 0) and behind is None  # that socket reads the database itself
    assert recent.start == revisions[-1]
    assert keys_of(after[0]) == ["k/5"] and len(reads) == 1


def test_a_large_batch_is_read_a_page_at_a_time(reads, monkeypatch):
    monkeypatch.setattr(watch, "READ_PAGE", 2)
    recent = watch.RecentChanges()

    async def scenario():
        await recent.read(prefix="", after=0, upto=0, caller=ANONYMOUS)
        revisions = [await aput(f"k/{i}") for i in range(5)]
        cursor, seen = 0, []
        while cursor < revisions[-1]:
            frames, cursor = await recent.read(
                prefix="k/", after=cursor, upto=revisions[-1], caller=ANONYMOUS
            )
            seen += keys_of(frames)
        return seen

    assert run(scenario) == [f"k/{i}" for i in range(5)]
    assert [r["limit"] for r in reads] == [2, 2, 2]


def test_an_entry_that_expires_is_sent_as_a_delete_once_past_its_expiry(reads):
    recent = opened_window()
    with TestCase.captureOnCommitCallbacks(execute=True):
        entry, _ = services.entry_put(key="t/x", value="1", caller=SYSTEM, ttl=60)

    async def scenario():
        return await recent.read(prefix="t/", after=0, upto=entry.revision, caller=ANONYMOUS)

    (frame,) = run(scenario)[0]
    assert json.loads(frame)["type"] == "put"
    recent._entries[0].expires_at = 1  # as if its time had come: decided when sent

    async def again():
        return await recent.read(prefix="t/", after=0, upto=entry.revision, caller=ANONYMOUS)

    (later,) = run(again)[0]
    assert json.loads(later)["type"] == "delete" and len(reads) == 1


def test_the_window_decides_by_the_keys_owner_group_and_mode_as_they_stand_now(reads, root_user):
    recent = opened_window()
    first = put("s/x")  # others may read it

    async def scenario():
        await recent.read(prefix="", after=0, upto=first, caller=SYSTEM)  # the window holds it
        restricted = await database_sync_to_async(_owner_only)("s/x")
        behind = await recent.read(prefix="s/", after=0, upto=restricted, caller=ANONYMOUS)
        system = await recent.read(prefix="s/", after=0, upto=restricted, caller=SYSTEM)
        return behind[0], system[0]

    behind, system = run(scenario)
    assert keys_of(behind) == []  # as a read of the database would: s/x is no longer readable
    assert keys_of(system) == ["s/x", "s/x"]


def _owner_only(key: str) -> int:
    with TestCase.captureOnCommitCallbacks(execute=True):
        entry = services.entry_meta_set(
            key=key, owner="root", mode=0xF00, fields={"owner", "mode"}, caller=SYSTEM
        )
    return entry.revision
