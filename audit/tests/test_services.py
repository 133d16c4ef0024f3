"""What becomes an event, and what does not: client writes through kv.services, security records
changed on this node, membership changes; not versions or records replicated from peers. And
retention: old stretches pruned while the chain still verifies."""

import uuid
from datetime import timedelta

import orjson
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import User
from accounts.services import group_create, group_update, token_create, token_revoke, user_create
from audit import chain
from audit.models import AuditChain, AuditEvent
from audit.selectors import chain_verify
from audit.services import event_record, events_prune
from cluster.membership import ALIVE, DEAD, MemberState
from cluster.models import Member
from cluster.node import local_node
from cluster.records import record_key
from cluster.store import DbMemberStore
from kv import services
from kv.acl import Caller
from kv.hlc import hlc_from_ms, wall_ms
from kv.policy import acl_rule_delete, acl_rule_put, schema_put
from kv.versions import Version
from ops.tests.helpers import value as metric

pytestmark = pytest.mark.django_db
ALICE = Caller(username="alice", superuser=True)


def test_client_writes_are_events_with_key_version_actor_and_node(events, last_seq):
    start = last_seq()
    entry, _ = services.entry_put(key="app/a", value="1", caller=ALICE, ttl=60)
    services.entry_meta_set(key="app/a", mode=0o7777, fields={"mode"}, caller=ALICE)
    services.entry_put(key="app/b/c", value="2", caller=ALICE)
    tombstone = services.entry_delete(key="app/a", caller=ALICE)
    deleted = services.entry_delete_recurse(key="app/b", caller=ALICE)
    written = events(after=start)
    assert [(e.action, e.target) for e in written] == [
        ("kv.put", "app/a"), ("kv.meta", "app/a"), ("kv.put", "app/b/c"),
        ("kv.delete", "app/a"), ("kv.delete", "app/b/c"),
    ]  # fmt: skip
    first = written[0]
    assert first.actor == "alice" and first.node == local_node().node_id
    assert first.detail == {"version": str(entry.version), "revision": entry.revision,
                            "created": True, "ttl": 60}  # fmt: skip
    assert written[1].detail["mode"] == 0o7777
    assert written[3].detail["version"] == str(tombstone.version)
    assert deleted == 1 and written[4].detail["recurse"] == "app/b"
    assert first.remote is None and first.credential is None  # no request: a service call


def test_a_refused_write_leaves_no_event(events, last_seq):
    services.entry_put(key="cas/x", value="1", caller=ALICE)
    start = last_seq()
    with pytest.raises(Exception, match="version"):
        services.entry_put(key="cas/x", value="2", caller=ALICE, cas=str(uuid.uuid4()))
    assert events(after=start) == []


def test_imports_record_one_event_per_written_line(events, last_seq):
    from kv.importing import ImportItem, entries_import

    services.entry_put(key="imp/same", value="1", caller=ALICE)
    start = last_seq()
    items = [ImportItem(key="imp/a", value="1"), ImportItem(key="imp/same", value="1")]
    entries_import(items, caller=ALICE)
    [event] = events(after=start)
    assert (event.action, event.target, event.detail["via"]) == ("kv.put", "imp/a", "import")


def test_replicated_versions_are_not_client_writes(events, last_seq):
    start = last_seq()
    version = Version(key="peer/k", version=uuid.uuid4(), hlc=hlc_from_ms(wall_ms()),
                      origin="peer", origin_joined_at=1, value='"v"', mode=0o7777)  # fmt: skip
    assert services.versions_apply([version]) == 1
    assert events(after=start) == []


def test_security_record_changes_are_events(events, last_seq):
    start = last_seq()
    user = user_create(username="carol", password="carol-password-1")
    group_create(name="ops", members=["carol"])
    group_update(group=Group.objects.get(name="ops"), remove=["carol"])
    issued = token_create(user=user, scopes=["read"], name="ci")
    token_revoke(token_id=issued.token.id)
    acl_rule_put(prefix="team/", owner=None, group="ops", mode=0o7741)
    acl_rule_delete(prefix="team/")
    schema_put(prefix="cfg/", schema={"type": "object"})
    user.delete()
    seen = [(e.action, e.target) for e in events(after=start)]
    for expected in [
        ("user.create", "carol"), ("group.create", "ops"), ("group.members", "ops"),
        ("token.create", issued.token.id), ("token.revoke", issued.token.id),
        ("acl.put", "team/"), ("acl.delete", "team/"), ("schema.put", "cfg/"),
        ("token.delete", issued.token.id), ("user.delete", "carol"),
    ]:  # fmt: skip
        assert expected in seen, (expected, seen)
    token_event = next(e for e in events("token.create", after=start))
    assert token_event.detail["scopes"] == ["read"] and "secret" not in str(token_event.detail)
    assert issued.secret not in orjson.dumps([e.detail for e in events(after=start)]).decode()


def test_a_login_bookkeeping_save_is_not_a_user_change(events, last_seq):
    user = User.objects.create_user(username="dave")
    start = last_seq()
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    assert events(after=start) == []


def test_records_materialized_from_a_peer_are_not_this_nodes_actions(
    events, last_seq, django_capture_on_commit_callbacks
):
    start = last_seq()
    record = {"name": "peer-group"}
    version = Version(key=record_key("groups", "peer-group"), version=uuid.uuid4(),
                      hlc=hlc_from_ms(wall_ms() + 1000), origin="peer", origin_joined_at=1,
                      value=orjson.dumps(record).decode())  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        services.versions_apply([version])
    assert Group.objects.filter(name="peer-group").exists()
    assert events(after=start) == []


def test_membership_changes_are_events_heartbeats_are_not(events, last_seq):
    start = last_seq()
    store = DbMemberStore("me")
    peer = MemberState("peer", "http://peer.test", 1, 0, 0, ALIVE, 5, 5)
    with store.locked() as table:
        table.put(peer)
    with store.locked() as table:
        table.put(MemberState("peer", "http://peer.test", 1, 0, 7, ALIVE, 9, 5))  # heartbeat
    with store.locked() as table:
        table.put(MemberState("peer", "http://peer.test", 1, 0, 7, DEAD, 9, 9))
    assert Member.objects.get(node_id="peer").status == DEAD
    seen = [(e.action, e.target, e.detail) for e in events(after=start)]
    assert seen == [
        ("member.join", "peer", {"url": "http://peer.test", "status": ALIVE, "incarnation": 0}),
        ("member.status", "peer", {"from": ALIVE, "to": DEAD, "incarnation": 0}),
    ]


def test_each_recorded_event_is_counted_by_action_after_commit(
    django_capture_on_commit_callbacks,
):
    before = metric("kvs_audit_events_total", action="test.counted")
    with django_capture_on_commit_callbacks(execute=True):
        event_record("test.counted")
        event_record("test.counted")
        assert metric("kvs_audit_events_total", action="test.counted") == before
    assert metric("kvs_audit_events_total", action="test.counted") == before + 2


# --- retention -----------------------------------------------------------------------------------


def aged(days: float, n: int) -> list[AuditEvent]:
    at = timezone.now() - timedelta(days=days)
    from audit.services import EventIn, events_record

    return events_record([EventIn(action="test.aged", target=str(i)) for i in range(n)], now=at)


def test_retention_off_keeps_everything(settings):
    settings.KVS_AUDIT_RETENTION_DAYS = 0
    aged(400, 3)
    assert events_prune() == 0
    assert AuditEvent.objects.filter(action="test.aged").count() == 3


def test_pruning_removes_the_old_stretch_and_the_chain_still_verifies(settings, events):
    settings.KVS_AUDIT_RETENTION_DAYS = 30
    old = aged(40, 4)
    recent = aged(1, 3)
    assert events_prune() >= 4
    assert not AuditEvent.objects.filter(seq__lte=old[-1].seq).exists()
    assert [e.seq for e in events("test.aged")] == [e.seq for e in recent]
    head = AuditChain.objects.get()
    assert (head.anchor_seq, head.anchor_hash) == (old[-1].seq, old[-1].hash)
    verdict = chain_verify()
    assert verdict.ok and verdict.anchor_seq == old[-1].seq and verdict.checked == 3
    event_record("test.after-pruning")
    assert chain_verify().ok
    assert events_prune() == 0  # nothing old is left: repeating is harmless


def test_after_pruning_a_changed_event_is_still_found(settings):
    settings.KVS_AUDIT_RETENTION_DAYS = 30
    aged(40, 2)
    recent = aged(1, 3)
    events_prune()
    AuditEvent.objects.filter(seq=recent[0].seq).update(target="forged")
    assert chain_verify().first_bad == recent[0].seq


def test_pruning_by_hand_and_moving_the_anchor_is_found(settings):
    """Without the key, deleting the oldest events and pointing the anchor at the newest
    deleted one is no prune: the anchor's MAC does not match."""
    events = aged(1, 5)
    AuditEvent.objects.filter(seq__lte=events[2].seq).delete()
    AuditChain.objects.filter(pk=1).update(
        anchor_seq=events[2].seq, anchor_hash=events[2].hash, anchor_mac="0" * 64
    )
    verdict = chain_verify()
    assert not verdict.ok and verdict.first_bad == events[2].seq + 1
    assert "anchor" in verdict.reason


def test_a_genuine_anchor_mac_is_needed_and_suffices(settings):
    events = aged(1, 3)
    AuditEvent.objects.filter(seq__lte=events[0].seq).delete()
    mac = chain.anchor_mac(seq=events[0].seq, hash_=events[0].hash)
    AuditChain.objects.filter(pk=1).update(
        anchor_seq=events[0].seq, anchor_hash=events[0].hash, anchor_mac=mac
    )
    assert chain_verify().ok


def test_the_prune_task_prunes_by_the_setting(settings):
    from audit.tasks import audit_prune

    settings.KVS_AUDIT_RETENTION_DAYS = 30
    aged(40, 2)
    assert audit_prune() >= 2
    assert chain_verify().ok


@pytest.mark.parametrize(("days", "scheduled"), [("30", True), ("0", False)])
def test_celery_beat_prunes_hourly_only_with_a_retention(days, scheduled, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "KVS_AUDIT_RETENTION_DAYS": days, "KVS_DATA_DIR": str(tmp_path)}
    code = (
        "from kvsite import settings as s; e = s.CELERY_BEAT_SCHEDULE.get('audit-prune'); "
        "print(bool(e) and e['task'] == 'audit.tasks.audit_prune' and e['schedule'] == 3600.0)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(scheduled), out.stderr


def test_the_insert_columns_are_the_models_fields_in_order():
    """events_record builds AuditEvent rows by position in the order of its INSERT's columns."""
    from audit.models import AuditEvent
    from audit.services import _COLUMNS

    assert [f.attname for f in AuditEvent._meta.concrete_fields] == list(_COLUMNS)
