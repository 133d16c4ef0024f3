import itertools
import uuid

import pytest

from kv import selectors, services
from kv.acl import Caller
from kv.hlc import hlc_from_ms
from kv.keys import InvalidKey
from kv.merkle import ZERO
from kv.models import Entry, EntryVersion, MerkleLeaf, StoreState
from kv.signals import entries_applied
from kv.versions import EXPIRY_NAMESPACE, Version
from kvsite.exceptions import Forbidden, NotFound

pytestmark = pytest.mark.django_db
NOW = 1_800_000_000_000


def remote(key="k", hlc_ms=NOW, joined=1, value='"v"', **kw) -> Version:
    return Version(
        key=key,
        version=uuid.uuid4(),
        hlc=hlc_from_ms(hlc_ms),
        origin="peer",
        origin_joined_at=joined,
        value=value,
        mode=3889,
        **kw,
    )


def store_reset() -> None:
    Entry.objects.all().delete()
    EntryVersion.objects.all().delete()
    MerkleLeaf.objects.update(hash=ZERO, count=0)
    StoreState.objects.filter(pk=1).update(hlc=0, revision=0, merkle_root=ZERO)


def assert_merkle_consistent() -> None:
    leaves, root = selectors.merkle_recompute()
    assert selectors.merkle_leaves() == leaves
    assert selectors.store_state().merkle_root == root


def test_put_creates_then_replaces_with_growing_revision_and_hlc():
    alice = Caller(username="alice")
    first, created = services.entry_put(key="a", value="1", caller=alice, now=NOW)
    second, created_again = services.entry_put(key="a", value="2", caller=alice, now=NOW)
    assert created and not created_again
    assert second.revision == first.revision + 1
    assert second.hlc > first.hlc
    assert second.owner == "alice"  # a replaced key keeps its owner


def test_apply_of_an_older_version_is_a_no_op():
    newer = remote(hlc_ms=NOW + 10, value='"new"')
    older = remote(hlc_ms=NOW, value='"old"')
    assert services.entry_apply(newer) is not None
    revision = selectors.store_state().revision
    assert services.entry_apply(older) is None
    assert services.entry_apply(newer) is None  # replay
    assert selectors.store_state().revision == revision
    assert Entry.objects.get(key="k").value == '"new"'


def test_apply_in_any_order_ends_in_the_same_state():
    versions = [
        remote(hlc_ms=NOW, value='"a"'),
        remote(hlc_ms=NOW + 1, value='"b"', joined=5),
        remote(hlc_ms=NOW + 1, value='"c"', joined=2),  # same hlc, older node: wins
        remote(hlc_ms=NOW - 5, value=None, deleted=True),
    ]
    outcomes = set()
    for order in itertools.permutations(versions):
        store_reset()
        for v in order:
            services.entry_apply(v)
        entry = Entry.objects.get(key="k")
        outcomes.add((entry.value, str(entry.version), selectors.store_state().merkle_root))
    assert len(outcomes) == 1
    assert outcomes.pop()[0] == '"c"'


def test_applying_a_remote_version_moves_the_local_clock_past_it():
    ahead = remote(key="x", hlc_ms=NOW + 60_000)
    services.entry_apply(ahead)
    local, _ = services.entry_put(key="y", value="1", now=NOW)
    assert local.hlc > ahead.hlc


def test_history_keeps_the_configured_number_of_previous_versions(settings):
    settings.KVS_HISTORY_DEPTH = 3
    for i in range(6):
        services.entry_put(key="h", value=str(i), now=NOW + i)
    entry, previous = selectors.entry_history(key="h")
    assert entry.value == "5"
    assert [v.value for v in previous] == ["4", "3", "2"]


def test_merkle_leaves_track_put_replace_delete_expire_and_purge(settings):
    settings.KVS_TOMBSTONE_TTL = 60
    for i in range(50):
        services.entry_put(key=f"m/{i}", value=str(i), now=NOW)
    assert_merkle_consistent()
    for i in range(0, 50, 3):
        services.entry_put(key=f"m/{i}", value="-1", now=NOW + 1)
    assert_merkle_consistent()
    for i in range(0, 50, 5):
        services.entry_delete(key=f"m/{i}", now=NOW + 2)
    assert_merkle_consistent()
    services.entry_put(key="m/ttl", value="1", ttl=1, now=NOW + 3)
    assert services.entries_expire(now=NOW + 5_000) == 1
    assert_merkle_consistent()
    assert services.tombstones_purge(now=NOW + 61_000) == 11
    assert_merkle_consistent()
    assert sum(MerkleLeaf.objects.values_list("count", flat=True)) == Entry.objects.count()


def test_expiry_turns_a_key_into_the_deterministic_tombstone():
    entry, _ = services.entry_put(key="t", value="1", ttl=2, now=NOW)
    assert services.entries_expire(now=NOW + 1_999) == 0
    assert services.entries_expire(now=NOW + 2_000) == 1
    tombstone = Entry.objects.get(key="t")
    assert tombstone.deleted
    assert tombstone.version == uuid.uuid5(EXPIRY_NAMESPACE, str(entry.version))
    assert tombstone.hlc == entry.hlc + 1


def test_two_nodes_expiring_the_same_version_produce_the_same_record():
    v = remote(key="e", expires_at=NOW + 1_000)
    digests = set()
    for _ in range(2):
        store_reset()
        services.entry_apply(v)
        services.entries_expire(now=NOW + 1_000)
        digests.add(Entry.objects.get(key="e").digest)
    assert len(digests) == 1


def test_expired_keys_are_invisible_before_the_expiry_task_runs():
    services.entry_put(key="gone", value="1", ttl=1, now=NOW)
    with pytest.raises(NotFound):
        selectors.entry_get(key="gone", now=NOW + 1_000)
    assert selectors.entry_get(key="gone", now=NOW + 999).value == "1"


def test_purge_forgets_only_old_tombstones(settings):
    settings.KVS_TOMBSTONE_TTL = 60
    services.entry_put(key="old", value="1", now=NOW)
    services.entry_delete(key="old", now=NOW)
    services.entry_put(key="young", value="1", now=NOW)
    services.entry_delete(key="young", now=NOW + 30_000)
    assert services.tombstones_purge(now=NOW + 61_000) == 1
    assert list(Entry.objects.values_list("key", flat=True)) == ["young"]
    assert not EntryVersion.objects.filter(key="old").exists()


def test_recursive_delete_tombstones_the_key_and_its_subtree_only():
    for key in ["d", "d/a", "d/a/b", "dx", "e"]:
        services.entry_put(key=key, value="1", now=NOW)
    assert services.entry_delete_recurse(key="d", now=NOW + 1) == 3
    live = set(selectors.live_entries(now=NOW + 2).values_list("key", flat=True))
    assert live == {"dx", "e"}


def test_applied_changes_are_announced_after_commit(django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, **kw):
        seen.append(kw)

    entries_applied.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.entry_put(key="s", value="1", now=NOW)
        assert seen == []  # nothing before commit
        for callback in callbacks:
            callback()
    finally:
        entries_applied.disconnect(receiver)
    assert [[(c.key, c.deleted) for c in s["changes"]] for s in seen] == [[("s", False)]]


def test_read_only_node_refuses_client_writes_but_applies_replication(settings):
    settings.KVS_READ_ONLY = True
    with pytest.raises(Forbidden):
        services.entry_put(key="r", value="1", now=NOW)
    assert services.entry_apply(remote(key="r")) is not None


def test_versions_apply_counts_only_newer_versions_and_drops_stale_tombstones(settings):
    settings.KVS_TOMBSTONE_TTL = 60
    fresh = remote(key="a", hlc_ms=NOW)
    stale_tombstone = remote(key="b", hlc_ms=NOW - 120_000, value=None, deleted=True)
    assert services.versions_apply([fresh, stale_tombstone], now=NOW) == 1
    assert services.versions_apply([fresh], now=NOW) == 0
    assert not Entry.objects.filter(key="b").exists()


def test_versions_from_peers_apply_under_keys_that_clients_can_no_longer_write():
    # Their origin accepted them (an earlier version of the key rules): refusing them here would
    # keep the stores apart for good.
    keys = ["zero\u200bwidth", "al/\ufffd\ufffd"]
    assert services.versions_apply([remote(key=k) for k in keys], now=NOW) == 2
    assert set(Entry.objects.values_list("key", flat=True)) >= set(keys)
    with pytest.raises(InvalidKey):
        services.entry_put(key=keys[0], value="1", now=NOW)
