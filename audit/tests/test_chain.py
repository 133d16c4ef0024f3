"""The chain: consecutive seqs, keyed hashes, and verify finding the first changed, removed or
reordered event, even when the attacker recomputes plain SHA-256 hashes."""

import hashlib
import hmac
import os
import stat

import pytest
from django.db import transaction

from audit import chain
from audit.models import AuditChain, AuditEvent
from audit.selectors import chain_verify
from audit.services import EventIn, event_record, events_record

pytestmark = pytest.mark.django_db


def record(n: int, *, action: str = "test.event") -> list[AuditEvent]:
    return events_record(
        [EventIn(action=action, target=f"k/{i}", detail={"i": i}) for i in range(n)]
    )


def test_events_get_consecutive_seqs_and_each_hash_covers_the_previous():
    first = record(3)
    second = event_record("test.other", target="x")
    seqs = [e.seq for e in [*first, second]]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    previous = AuditEvent.objects.filter(seq__lt=seqs[0]).order_by("-seq").first()
    prev_hash = previous.hash if previous else AuditChain.objects.get().anchor_hash
    for event in AuditEvent.objects.filter(seq__gte=seqs[0]).order_by("seq"):
        assert event.hash == chain.event_hash(event, previous=prev_hash)
        prev_hash = event.hash
    assert AuditChain.objects.get().last_hash == prev_hash
    verdict = chain_verify()
    assert verdict.ok and verdict.first_bad is None
    assert verdict.checked == AuditEvent.objects.count()


def test_stored_events_hash_as_they_read_back():
    """What is hashed is what the database gives back: detail as JSON, at in whole ms."""
    event_record("test.types", target="ü/ключ", detail={"n": 2**53, "t": (1, "a"), "none": None})
    stored = AuditEvent.objects.order_by("-seq").first()
    assert stored.detail == {"n": 2**53, "t": [1, "a"], "none": None}
    assert chain_verify().ok


def test_the_key_file_is_created_once_with_mode_0600(audit_key_file):
    assert not audit_key_file.exists()
    event_record("test.event")
    assert stat.S_IMODE(os.stat(audit_key_file).st_mode) == 0o600
    key = audit_key_file.read_text()
    event_record("test.event")
    assert audit_key_file.read_text() == key and len(key) >= 32


def test_an_event_rolled_back_with_its_change_is_not_kept():
    record(2)
    head = AuditChain.objects.get()
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record("test.doomed")
        raise RuntimeError("the change fails")
    assert not AuditEvent.objects.filter(action="test.doomed").exists()
    assert AuditChain.objects.get().last_seq == head.last_seq
    assert chain_verify().ok


def test_an_edited_event_is_the_first_bad():
    events = record(5)
    AuditEvent.objects.filter(seq=events[2].seq).update(actor="mallory")
    verdict = chain_verify()
    assert not verdict.ok and verdict.first_bad == events[2].seq
    assert verdict.checked == AuditEvent.objects.filter(seq__lt=events[2].seq).count()


@pytest.mark.parametrize("field", ["action", "target", "detail", "remote", "node", "at", "hash"])
def test_a_change_of_any_field_is_detected(field):
    from datetime import timedelta

    events = record(3)
    victim = events[1]
    changes = {
        "action": "x",
        "target": "y",
        "detail": {"i": 99},
        "remote": "10.0.0.9",
        "node": "other",
        "at": victim.at + timedelta(milliseconds=1),
        "hash": "f" * 64,
    }
    AuditEvent.objects.filter(seq=victim.seq).update(**{field: changes[field]})
    assert chain_verify().first_bad == victim.seq


def test_a_deleted_event_is_the_first_bad():
    events = record(5)
    AuditEvent.objects.filter(seq=events[2].seq).delete()
    verdict = chain_verify()
    assert not verdict.ok and verdict.first_bad == events[2].seq
    assert verdict.reason == "an event is missing"


def test_deleted_events_at_the_end_are_found_from_the_head():
    events = record(4)
    AuditEvent.objects.filter(seq__gte=events[2].seq).delete()
    assert chain_verify().first_bad == events[2].seq


def test_swapped_events_are_found_at_the_first_of_them():
    events = record(5)
    a, b = events[1].seq, events[3].seq
    AuditEvent.objects.filter(seq=a).update(seq=-1)
    AuditEvent.objects.filter(seq=b).update(seq=a)
    AuditEvent.objects.filter(seq=-1).update(seq=b)
    verdict = chain_verify()
    assert not verdict.ok and verdict.first_bad == a


def test_swapped_contents_under_the_same_seqs_are_found():
    events = record(4)
    one, two = events[1], events[2]
    fields = ("target", "detail", "hash")
    AuditEvent.objects.filter(seq=one.seq).update(**{f: getattr(two, f) for f in fields})
    AuditEvent.objects.filter(seq=two.seq).update(**{f: getattr(one, f) for f in fields})
    assert chain_verify().first_bad == one.seq


def _rechain(from_seq: int, digest) -> None:
    """What an attacker with the database but not the key does: recompute every hash from
    `from_seq` on with `digest(previous, canonical)`, and the head too."""
    previous = AuditEvent.objects.filter(seq__lt=from_seq).order_by("-seq").first()
    prev_hash = previous.hash if previous else AuditChain.objects.get().anchor_hash
    for event in AuditEvent.objects.filter(seq__gte=from_seq).order_by("seq"):
        prev_hash = digest(prev_hash, chain.canonical(event))
        AuditEvent.objects.filter(seq=event.seq).update(hash=prev_hash)
    AuditChain.objects.filter(pk=1).update(last_hash=prev_hash)


def keyed(key: bytes):
    def digest(prev: str, body: bytes) -> str:
        return hmac.new(key, prev.encode() + b"\n" + body, hashlib.sha256).hexdigest()

    return digest


def plain_sha256(prev: str, body: bytes) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()


def test_an_attacker_recomputing_plain_sha256_hashes_is_still_found():
    events = record(5)
    AuditEvent.objects.filter(seq=events[1].seq).update(detail={"i": "rewritten"})
    _rechain(
        events[1].seq, lambda prev, body: hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()
    )
    verdict = chain_verify()
    assert not verdict.ok and verdict.first_bad == events[1].seq


def test_an_attacker_with_another_key_is_still_found():
    events = record(3)
    AuditEvent.objects.filter(seq=events[0].seq).update(actor="mallory")
    guess = b"not-the-node-key-but-just-as-long-as-one-0123456789"
    _rechain(events[0].seq, keyed(guess))
    assert chain_verify().first_bad == events[0].seq


def test_with_the_key_a_rechained_trail_would_verify():
    """The key is the whole secret: the same rewrite with it passes (so keep it off the DB)."""
    events = record(3)
    AuditEvent.objects.filter(seq=events[0].seq).update(actor="mallory")
    key = chain.audit_key()
    _rechain(events[0].seq, keyed(key))
    assert chain_verify().ok


def test_an_empty_trail_verifies():
    AuditEvent.objects.all().delete()
    AuditChain.objects.all().delete()
    verdict = chain_verify()
    assert verdict.ok and verdict.checked == 0 and verdict.first_bad is None
