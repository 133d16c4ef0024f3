"""The per-process cache of ACL rules and schemas, and how a change reaches every process."""

import pytest
from django.db import transaction

from kv import policy
from kv.models import PrefixSchema

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, settings):
    settings.KVS_DATA_DIR = tmp_path
    settings.KVS_POLICY_CACHE_SECONDS = 3600
    policy.policy_cache_clear()
    yield
    policy._cache.clear()


def _stored_elsewhere(prefix: str) -> None:
    """A schema stored by another process of the node: no signal reaches this one."""
    PrefixSchema.objects.bulk_create([PrefixSchema(prefix=prefix, schema={"type": "object"})])


def test_a_change_in_another_process_is_seen_once_it_moves_the_stamp():
    assert policy.schemas_for("users/bob") == []
    _stored_elsewhere("users/")
    assert policy.schemas_for("users/bob") == []  # cached, and nothing said it moved
    policy._stamp_touch()  # what the other process does when its change commits
    assert [s.prefix for s in policy.schemas_for("users/bob")] == ["users/"]


def test_storing_a_schema_moves_the_stamp_when_it_commits():
    before = policy._stamp()
    with transaction.atomic():
        policy.schema_put(prefix="users/", schema={"type": "object"})
        assert policy._stamp() == before
    assert policy._stamp() > before


def test_a_rolled_back_change_leaves_the_stamp():
    before = policy._stamp()
    with pytest.raises(RuntimeError), transaction.atomic():
        policy.schema_put(prefix="users/", schema={"type": "object"})
        raise RuntimeError
    assert policy._stamp() == before


def test_the_stamp_moves_on_every_change_even_within_one_clock_tick():
    stamps = []
    for _ in range(5):
        policy._stamp_touch()
        stamps.append(policy._stamp())
    assert stamps == sorted(set(stamps))
