"""The figures read from the database at scrape time, and those other features report."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError

from cluster.models import Member, PeerCursor
from cluster.node import local_node
from cluster.replication import replication_lags
from kv import selectors, services
from kv.hlc import hlc_from_ms
from kv.versions import Version
from ops import collectors, events

from .helpers import samples, value

pytestmark = pytest.mark.django_db
NOW = 1_800_000_000_000


def test_keys_tombstones_and_revision_follow_the_store():
    services.entry_put(key="a", value="1")
    services.entry_put(key="b", value="1")
    services.entry_delete(key="a")
    assert value("kvs_keys") == 1
    assert value("kvs_tombstones") == 1
    assert value("kvs_revision") == selectors.store_state().revision


def test_members_are_counted_by_status():
    local_node()
    for node_id, status in (("n2", "alive"), ("n3", "dead"), ("n4", "dead"), ("n5", "left")):
        Member.objects.create(node_id=node_id, url=f"http://{node_id}", joined_at=1, status=status)
    counts = {s.labels["status"]: s.value for s in samples("kvs_members")}
    assert counts == {"alive": 2, "suspect": 0, "dead": 2, "left": 1}  # alive: n2 and this node


def _put_at(key: str, ms: int) -> int:
    """Write `key` as of `ms`; the revision it got."""
    return services.entry_put(key=key, value="1", now=ms)[0].revision


def test_replication_lag_is_counted_from_each_peers_cursor():
    local_node()
    Member.objects.create(node_id="behind", url="http://behind", joined_at=1)
    Member.objects.create(node_id="current", url="http://current", joined_at=1)
    Member.objects.create(node_id="gone", url="http://gone", joined_at=1, status="left")
    first = _put_at("a", NOW - 30_000)
    _put_at("b", NOW - 10_000)
    last = _put_at("c", NOW - 5_000)
    PeerCursor.objects.create(node_id="behind", revision=first)  # has a, lacks b and c
    PeerCursor.objects.create(node_id="current", revision=last)
    lags = replication_lags(now=NOW)
    assert set(lags) == {"behind", "current"}  # a member that left is no peer
    assert (lags["behind"].revisions, lags["behind"].seconds) == (last - first, 10.0)
    assert (lags["current"].revisions, lags["current"].seconds) == (0, 0.0)


def test_replication_lag_is_scraped_per_peer():
    local_node()
    Member.objects.create(node_id="never-pushed", url="http://p", joined_at=1)
    services.entry_put(key="a", value="1")
    revision = selectors.store_state().revision
    assert value("kvs_replication_lag_revisions", peer="never-pushed") == revision
    assert value("kvs_replication_lag_seconds", peer="never-pushed") >= 0


def test_the_database_size_is_reported():
    assert value("kvs_database_size_bytes") > 0


def test_the_node_says_who_it_is():
    [info] = samples("kvs_node_info")
    assert info.labels["node_id"] == local_node().node_id
    assert info.labels["mode"] == "normal"
    assert info.value == 1


def test_the_last_backup_comes_from_the_backups_source(monkeypatch):
    monkeypatch.setattr(events, "_backup_time", None)
    assert samples("kvs_backup_last_success_timestamp_seconds") == []  # unknown: no sample
    events.backup_time_source(lambda: 1_700_000_123.5)
    assert value("kvs_backup_last_success_timestamp_seconds") == 1_700_000_123.5
    events.backup_time_source(lambda: None)  # no backup yet
    assert samples("kvs_backup_last_success_timestamp_seconds") == []


def test_audit_events_are_counted_by_action_and_odd_actions_as_other():
    before_put = value("kvs_audit_events_total", action="kv.put")
    before_other = value("kvs_audit_events_total", action="other")
    events.audit_event_counted(action="kv.put")
    events.audit_event_counted(action="kv.put")
    events.audit_event_counted(action="some/key/That Is Not An Action")
    assert value("kvs_audit_events_total", action="kv.put") == before_put + 2
    assert value("kvs_audit_events_total", action="other") == before_other + 1


def test_a_database_that_cannot_be_read_leaves_the_other_figures(monkeypatch, anon):
    def fail():
        raise DatabaseError("database is locked")

    monkeypatch.setattr(collectors, "live_key_count", fail)
    anon.get("/health")
    response = anon.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "kvs_http_requests_total" in text
    assert "kvs_keys" not in text


def test_tombstones_from_peers_count_too():
    v = Version("gone", uuid.uuid4(), hlc_from_ms(NOW), "peer", 1, deleted=True)
    services.versions_apply([v], now=NOW)
    assert value("kvs_tombstones") == 1
