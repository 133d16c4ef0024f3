import pytest

from kv import services, tasks
from kv.hlc import wall_ms
from kv.models import Entry

pytestmark = pytest.mark.django_db


def test_expire_task_tombstones_keys_past_their_ttl():
    services.entry_put(key="soon", value="1", ttl=1, now=wall_ms() - 5_000)
    services.entry_put(key="later", value="1", ttl=3600)
    assert tasks.entries_expire.apply().get() == 1
    assert Entry.objects.get(key="soon").deleted
    assert not Entry.objects.get(key="later").deleted


def test_purge_task_forgets_tombstones_past_the_tombstone_ttl(settings):
    settings.KVS_TOMBSTONE_TTL = 1
    services.entry_put(key="x", value="1", now=wall_ms() - 10_000)
    services.entry_delete(key="x", now=wall_ms() - 10_000)
    assert tasks.tombstones_purge.apply().get() == 1
    assert not Entry.objects.filter(key="x").exists()
