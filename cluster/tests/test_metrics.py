"""Replication and anti-entropy metrics, per peer."""

import pytest

from cluster.antientropy import merkle_sync
from cluster.replication import replicate_push
from cluster.transport import TransportError
from kv import services
from ops.tests.helpers import value

from .test_antientropy import MemoryPeer, version
from .test_replication import PEER, RecordingTransport

pytestmark = pytest.mark.django_db


def test_push_batches_and_versions_are_counted_per_peer(settings):
    settings.KVS_PUSH_BATCH = 2
    batches = value("kvs_replication_push_batches_total", peer="peer")
    versions = value("kvs_replication_push_versions_total", peer="peer")
    for key in ("a", "b", "c"):
        services.entry_put(key=key, value="1")
    replicate_push(RecordingTransport(), PEER)
    assert value("kvs_replication_push_batches_total", peer="peer") == batches + 2
    assert value("kvs_replication_push_versions_total", peer="peer") == versions + 3


def test_a_failed_push_is_counted_and_the_batch_is_not():
    failures = value("kvs_replication_push_failures_total", peer="peer")
    batches = value("kvs_replication_push_batches_total", peer="peer")
    services.entry_put(key="a", value="1")
    with pytest.raises(TransportError):
        replicate_push(RecordingTransport(fail=True), PEER)
    assert value("kvs_replication_push_failures_total", peer="peer") == failures + 1
    assert value("kvs_replication_push_batches_total", peer="peer") == batches


def rounds(outcome: str) -> float:
    return value("kvs_antientropy_rounds_total", peer="peer", outcome=outcome)


def test_an_anti_entropy_round_with_equal_trees_counts_as_equal():
    shared = [version(f"k{i}") for i in range(20)]
    services.versions_apply(shared)
    equal, repaired = rounds("equal"), rounds("repaired")
    merkle_sync(MemoryPeer(shared), "http://peer", peer_id="peer")
    assert (rounds("equal"), rounds("repaired")) == (equal + 1, repaired)


def test_a_repairing_round_counts_buckets_keys_and_bytes():
    shared = [version(f"k{i}") for i in range(50)]
    services.versions_apply([*shared, version("mine")])
    peer = MemoryPeer([*shared, version("yours"), version("theirs")])
    before = {
        "buckets": value("kvs_antientropy_differing_buckets_total", peer="peer"),
        "pulled": value("kvs_antientropy_keys_repaired_total", peer="peer", direction="pulled"),
        "pushed": value("kvs_antientropy_keys_repaired_total", peer="peer", direction="pushed"),
        "sent": value("kvs_antientropy_bytes_total", peer="peer", direction="sent"),
        "received": value("kvs_antientropy_bytes_total", peer="peer", direction="received"),
        "repaired": rounds("repaired"),
    }
    report = merkle_sync(peer, "http://peer", peer_id="peer")
    after = {
        "buckets": value("kvs_antientropy_differing_buckets_total", peer="peer"),
        "pulled": value("kvs_antientropy_keys_repaired_total", peer="peer", direction="pulled"),
        "pushed": value("kvs_antientropy_keys_repaired_total", peer="peer", direction="pushed"),
        "sent": value("kvs_antientropy_bytes_total", peer="peer", direction="sent"),
        "received": value("kvs_antientropy_bytes_total", peer="peer", direction="received"),
        "repaired": rounds("repaired"),
    }
    assert after["buckets"] - before["buckets"] == len(report.buckets) >= 1
    assert after["pulled"] - before["pulled"] == report.pulled == 2
    assert after["pushed"] - before["pushed"] == report.pushed == 1
    assert after["sent"] - before["sent"] == report.bytes_sent > 0
    assert after["received"] - before["received"] == report.bytes_received > 0
    assert after["repaired"] == before["repaired"] + 1


class DownPeer:
    def send(self, url, path, payload, *, to):
        raise TransportError("unreachable")


def test_a_failed_round_counts_as_failed():
    failed = rounds("failed")
    with pytest.raises(TransportError):
        merkle_sync(DownPeer(), "http://peer", peer_id="peer")
    assert rounds("failed") == failed + 1
