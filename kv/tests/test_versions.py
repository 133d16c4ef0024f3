import uuid

from kv.versions import Version, expiry_tombstone, version_newer


def make(hlc=100, joined=10, vid=None, **kw) -> Version:
    return Version(
        key="k", version=vid or uuid.uuid4(), hlc=hlc, origin="n1", origin_joined_at=joined, **kw
    )


def test_higher_hlc_wins():
    assert version_newer(make(hlc=101), make(hlc=100))
    assert not version_newer(make(hlc=100), make(hlc=101))


def test_on_equal_hlc_the_older_node_wins():
    older_node = make(hlc=100, joined=5)
    younger_node = make(hlc=100, joined=9)
    assert version_newer(older_node, younger_node)
    assert not version_newer(younger_node, older_node)


def test_on_equal_hlc_and_join_time_the_lower_uuid_wins():
    low = make(vid=uuid.UUID(int=1))
    high = make(vid=uuid.UUID(int=2))
    assert version_newer(low, high)
    assert not version_newer(high, low)


def test_a_version_is_not_newer_than_itself():
    v = make()
    assert not version_newer(v, v)


def test_order_is_total_and_the_same_whatever_the_arrival_order():
    versions = [make(hlc=h, joined=j) for h in (1, 2) for j in (1, 2) for _ in range(3)]
    winner = max(versions, key=Version.order)
    for v in versions:
        assert v is winner or version_newer(winner, v)


def test_expiry_tombstone_is_deterministic_and_beats_the_expired_version():
    expired = make(value='"x"', expires_at=5000)
    a, b = expiry_tombstone(expired), expiry_tombstone(expired)
    assert a == b
    assert a.deleted and a.value is None
    assert version_newer(a, expired)


def test_a_write_that_replaced_a_version_beats_its_expiry_tombstone():
    expired = make(hlc=1000, value='"x"', expires_at=5000)
    replacement = make(hlc=1001 + 5, value='"y"')
    assert version_newer(replacement, expiry_tombstone(expired))


def test_wire_form_round_trips():
    v = make(value='{"a":1}', expires_at=7, owner="alice", group="ops", mode=3889)
    assert Version.from_wire(v.as_wire()) == v


def test_a_write_that_ties_with_the_expiry_tombstone_still_wins():
    expired = make(hlc=1000, joined=5, value='"x"', expires_at=5000)
    tie = make(hlc=1001, joined=9, value='"y"')  # a lagging node's write right after the first
    assert version_newer(tie, expiry_tombstone(expired))
