"""The Merkle walk against an in-memory peer that speaks the same three messages."""

import uuid

import pytest

from cluster.antientropy import (
    DIGESTS_PATH,
    MERKLE_PATH,
    VERSIONS_PATH,
    digest_order,
    digests_answer,
    merkle_answer,
    merkle_sync,
)
from kv import selectors, services
from kv.hlc import hlc_from_ms
from kv.merkle import bucket_of, node_hash, record_digest, xor_hex
from kv.models import Entry
from kv.versions import Version, version_newer

pytestmark = pytest.mark.django_db
NOW = 1_800_000_000_000


class MemoryPeer:
    """A peer whose store is a dict of versions, answering like cluster/internal does."""

    def __init__(self, versions: list[Version]) -> None:
        self.store = {v.key: v for v in versions}
        self.paths: list[str] = []

    def leaves(self) -> dict[int, str]:
        leaves: dict[int, str] = {}
        for v in self.store.values():
            digest = record_digest(key=v.key, version=str(v.version), hlc=v.hlc, deleted=v.deleted)
            bucket = bucket_of(v.key)
            leaves[bucket] = xor_hex(leaves.get(bucket, "0" * 32), digest)
        return leaves

    def send(self, url: str, path: str, payload: dict, *, to: str) -> dict:
        assert (url, to) == ("http://peer", "peer")
        self.paths.append(path)
        if path == MERKLE_PATH:
            leaves = self.leaves()
            return {"hashes": [node_hash(leaves, payload["level"], n) for n in payload["nodes"]]}
        if path == DIGESTS_PATH:
            theirs = {d[0]: d for d in payload["digests"]}
            mine = {v.key: v for v in self.store.values() if bucket_of(v.key) in payload["buckets"]}
            give = [
                v.as_wire()
                for key, v in mine.items()
                if key not in theirs or v.order() > digest_order(theirs[key])
            ]
            want = [
                key
                for key, d in theirs.items()
                if key not in mine or digest_order(d) > mine[key].order()
            ]
            return {"versions": give, "want": want}
        assert path == VERSIONS_PATH
        for wire in payload["versions"]:
            v = Version.from_wire(wire)
            if v.key not in self.store or version_newer(v, self.store[v.key]):
                self.store[v.key] = v
        return {"applied": len(payload["versions"])}


def version(key: str, ms: int = NOW, value: str = '"v"', **kw) -> Version:
    return Version(
        key=key,
        version=uuid.uuid4(),
        hlc=hlc_from_ms(ms),
        origin="n",
        origin_joined_at=1,
        value=value,
        **kw,
    )


def local_records() -> dict[str, str]:
    return {e.key: str(e.version) for e in Entry.objects.all()}


def test_equal_trees_exchange_one_message():
    shared = [version(f"k{i}") for i in range(200)]
    services.versions_apply(shared)
    peer = MemoryPeer([v for v in shared])
    report = merkle_sync(peer, "http://peer", peer_id="peer")
    assert report.equal and report.messages == 1
    assert peer.paths == [MERKLE_PATH]


def test_divergent_keys_are_found_and_repaired_both_ways():
    shared = [version(f"k{i}") for i in range(300)]
    services.versions_apply(shared)
    ours_newer = version("k1", NOW + 5, '"ours"')
    theirs_newer = version("k2", NOW + 5, '"theirs"')
    only_ours, only_theirs = version("mine"), version("yours")
    deleted_there = version("k3", NOW + 5, None, deleted=True)
    services.versions_apply([ours_newer, only_ours])
    peer = MemoryPeer([*shared, theirs_newer, only_theirs, deleted_there])
    report = merkle_sync(peer, "http://peer", peer_id="peer")
    assert not report.equal
    expected = {bucket_of(k) for k in ("k1", "k2", "k3", "mine", "yours")}
    assert set(report.buckets) == expected
    assert report.pulled == 3 and report.pushed == 2
    assert Entry.objects.get(key="k2").value == '"theirs"'
    assert Entry.objects.get(key="k3").deleted
    assert peer.store["k1"].value == '"ours"' and "mine" in peer.store
    assert selectors.merkle_leaves() == peer.leaves()
    again = merkle_sync(peer, "http://peer", peer_id="peer")
    assert again.equal and again.messages == 1


def test_bytes_grow_with_the_difference_not_the_store():
    shared = [version(f"k{i}") for i in range(3000)]
    services.versions_apply(shared)
    peer = MemoryPeer([*shared, *(version(f"new{i}") for i in range(3))])
    report = merkle_sync(peer, "http://peer", peer_id="peer")
    assert report.pulled == 3
    assert report.bytes_sent + report.bytes_received < 16 * 1024


def test_the_answering_side_gives_newer_versions_and_wants_older_ones():
    services.versions_apply([version("a", NOW + 1, '"new"'), version("b", NOW)])
    older_a = version("a", NOW)
    newer_b = version("b", NOW + 1)
    stored_b = Entry.objects.get(key="b")
    digests = [
        ["a", str(older_a.version), older_a.hlc, 1],
        ["b", str(newer_b.version), newer_b.hlc, 1],
        ["c", str(uuid.uuid4()), hlc_from_ms(NOW), 1],
    ]
    answer = digests_answer(buckets=[bucket_of(k) for k in "abc"], digests=digests)
    assert [v["key"] for v in answer["versions"]] == ["a"]
    assert sorted(answer["want"]) == ["b", "c"]
    assert str(stored_b.version) != str(newer_b.version)
    assert merkle_answer(level=0, nodes=[0]) == {
        "hashes": [selectors.store_state().merkle_root],
        "syncing": False,
    }


def test_a_sync_with_a_peer_that_is_itself_syncing_says_so():
    class SyncingPeer(MemoryPeer):
        def send(self, url, path, payload, *, to):
            answer = super().send(url, path, payload, to=to)
            return {**answer, "syncing": True} if path == MERKLE_PATH else answer

    report = merkle_sync(SyncingPeer([]), "http://peer", peer_id="peer")
    assert report.equal and report.peer_syncing
