"""The batch write path: one transaction, consecutive revisions, each write its own outcome."""

import uuid
from functools import partial

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kv import locking, selectors, services
from kv.acl import Caller
from kv.batch import entries_apply_batch
from kv.models import AclRule, Entry, EntryVersion, PrefixSchema
from kv.policy import SchemaViolation
from kv.signals import entries_applied
from kv.versions import Version
from kvsite.exceptions import Conflict, Forbidden, NotFound

from .test_services import NOW, assert_merkle_consistent

pytestmark = pytest.mark.django_db
ALICE = Caller(username="alice")
BOB = Caller(username="bob")


def put(key, value, *, caller=ALICE, cas=None, now=NOW):
    return partial(
        services._put_write, key=key, value=value, caller=caller, ttl=None, cas=cas, now=now
    )


def delete(key, *, caller=ALICE, now=NOW):
    return partial(services._delete_write, key=key, caller=caller, cas=None, now=now)


def test_a_batch_gives_each_write_its_own_outcome_with_consecutive_revisions():
    services.entry_put(key="kept", value="0", caller=ALICE, now=NOW)
    kept = Entry.objects.get(key="kept")
    AclRule.objects.create(prefix="locked/", owner="root", mode=0o7700)
    base = selectors.store_state().revision
    outcomes = entries_apply_batch(
        [
            put("a", "1"),
            put("kept", "1", cas=str(uuid.uuid4())),  # stale cas
            put("locked/x", "1"),  # the rule refuses alice
            put("kept", "2", cas=str(kept.version)),
            delete("absent"),
            put("kept", "3", caller=BOB),  # others may only read alice's key
            delete("a"),
        ]
    )
    errors = [type(o.error) if o.error else None for o in outcomes]
    assert errors == [None, Conflict, Forbidden, None, NotFound, Forbidden, None]
    stored = [o.result for o in outcomes if o.error is None]
    revisions = [r[0].revision if isinstance(r, tuple) else r.revision for r in stored]
    assert revisions == list(range(base + 1, base + 1 + len(stored)))
    assert selectors.store_state().revision == base + len(stored)
    assert not Entry.objects.filter(key="locked/x").exists()
    assert Entry.objects.get(key="a").deleted
    assert_merkle_consistent()


def test_a_failing_write_leaves_nothing_behind():
    def stores_then_fails(batch):
        services._put_write(batch, key="half", value="1", caller=ALICE, ttl=None, cas=None, now=NOW)
        raise Forbidden("no")

    base = selectors.store_state().revision
    outcomes = entries_apply_batch([stores_then_fails, put("whole", "1")])
    assert isinstance(outcomes[0].error, Forbidden)
    assert outcomes[1].result[0].revision == base + 1
    assert not Entry.objects.filter(key="half").exists()
    assert_merkle_consistent()


def test_a_key_written_twice_in_a_batch_keeps_its_versions_in_history(settings):
    settings.KVS_HISTORY_DEPTH = 2
    services.entry_put(key="k", value="0", caller=ALICE, now=NOW)
    entries_apply_batch([put("k", str(n)) for n in range(1, 5)])
    entry = Entry.objects.get(key="k")
    assert entry.value == "4"
    history = EntryVersion.objects.filter(key="k").order_by("-hlc")
    assert [v.value for v in history] == ["3", "2"]
    entries_apply_batch([put("k", "5")])
    assert [v.value for v in EntryVersion.objects.filter(key="k").order_by("-hlc")] == ["4", "3"]
    assert_merkle_consistent()


def test_one_signal_per_batch_with_its_changes_in_revision_order(
    django_capture_on_commit_callbacks,
):
    seen = []

    def receiver(sender, changes, **kwargs):
        seen.append(changes)

    entries_applied.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            entries_apply_batch([put("x", "1"), put("y", "1"), delete("nope"), put("x", "2")])
    finally:
        entries_applied.disconnect(receiver)
    assert len(seen) == 1
    assert [c.key for c in seen[0]] == ["x", "y", "x"]
    revisions = [c.revision for c in seen[0]]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3


def test_a_schema_violation_is_refused_before_the_write_joins_a_batch():
    PrefixSchema.objects.create(prefix="typed/", schema={"type": "integer"})
    with pytest.raises(SchemaViolation):
        services.entry_put(key="typed/a", value='"text"', now=NOW)
    assert services.entry_put(key="typed/a", value="7", now=NOW)[1]


def test_replicated_versions_apply_as_one_batch_per_chunk(django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, changes, **kwargs):
        seen.append(len(changes))

    versions = [
        Version(
            key=f"r/{n}",
            version=uuid.uuid4(),
            hlc=(NOW << 16) + n,
            origin="peer",
            origin_joined_at=1,
            value="1",
            mode=0o7777,
        )  # fmt: skip
        for n in range(10)
    ]
    entries_applied.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert services.versions_apply(versions, now=NOW, chunk=4) == 10
    finally:
        entries_applied.disconnect(receiver)
    assert seen == [4, 4, 2]
    assert selectors.store_state().hlc >= versions[-1].hlc
    assert_merkle_consistent()


def statements(write) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        write()
    return [
        q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]


def test_statements_per_write(settings):
    settings.KVS_HISTORY_DEPTH = 3
    for n in range(5):
        services.entry_put(key="s", value=str(n), caller=ALICE, now=NOW)
    # replacing a key whose history is full: state, entry (+ history count), upsert, history
    # insert and trim, leaf read and update, state update; then the audit trail: its chain head
    # read, the events' insert and the head's update
    assert len(statements(lambda: services.entry_put(key="s", value="9", now=NOW))) == 8 + 3
    # creating a key: no history
    assert len(statements(lambda: services.entry_put(key="new", value="9", now=NOW))) == 6 + 3
    for n in range(50):
        services.entry_put(key=f"m/{n}", value="0", caller=ALICE, now=NOW)
    for _ in range(3):
        entries_apply_batch(
            [put(f"m/{n}", "1") for n in range(50)], keys=[f"m/{n}" for n in range(50)]
        )
    # fifty replaces in one batch: the same eight statements, and the audit trail's three insert
    # the fifty events at once
    batch = [put(f"m/{n}", "2") for n in range(50)]
    sql = statements(lambda: entries_apply_batch(batch, keys=[f"m/{n}" for n in range(50)]))
    assert len(sql) == 8 + 3
    assert sum(q.replace('"', "").startswith("INSERT INTO audit_auditevent") for q in sql) == 1
    assert_merkle_consistent()


def _expiry(key):
    return Entry.objects.filter(key=key).values_list("deleted", "expires_at").get()


def test_the_upsert_sets_the_expiry_columns_only_when_a_batch_changes_them():
    for key in ("same", "ttl", "gone", "back"):
        services.entry_put(key=key, value="0", caller=ALICE, now=NOW)
    services.entry_delete(key="back", caller=ALICE, now=NOW)
    ttl = partial(services._put_write, key="ttl", value="1", caller=ALICE, ttl=60, cas=None,
                  now=NOW)  # fmt: skip
    # a batch where nothing changes its expiry: the statement leaves those columns alone
    sql = statements(lambda: entries_apply_batch([put("same", "1")], keys=["same"]))
    upsert = next(q for q in sql if q.replace('"', "").startswith("INSERT INTO kv_entry"))
    assert "expires_at = excluded" not in upsert.replace('"', "")
    assert _expiry("same") == (False, None)
    # a batch where some write changes it sets them for every row, each to its own value
    outcomes = entries_apply_batch(
        [put("same", "2"), ttl, delete("gone"), put("back", "1")],
        keys=["same", "ttl", "gone", "back"],
    )
    assert all(o.error is None for o in outcomes)
    assert _expiry("same") == (False, None)
    assert _expiry("ttl") == (False, NOW + 60_000)
    assert _expiry("gone") == (True, None)
    assert _expiry("back") == (False, None)
    # a key whose expiry changes and changes back within one batch keeps the stored one
    clear = partial(services._put_write, key="ttl", value="3", caller=ALICE, ttl=60, cas=None,
                    now=NOW)  # fmt: skip
    entries_apply_batch([put("ttl", "2"), clear], keys=["ttl"])
    assert _expiry("ttl") == (False, NOW + 60_000)
    assert Entry.objects.get(key="ttl").value == "3"
    assert_merkle_consistent()


def test_the_audit_events_of_a_batch_need_no_savepoint():
    services.entry_put(key="s", value="0", caller=ALICE, now=NOW)
    with CaptureQueriesContext(connection) as ctx:
        services.entry_put(key="s", value="1", now=NOW)
    # the one savepoint is the batch's own, nested in the test's transaction
    assert sum(q["sql"].startswith("SAVEPOINT") for q in ctx.captured_queries) == 1


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_signal_comes_after_the_commit_and_the_store_lock():
    seen = []

    def receiver(sender, changes, **kwargs):
        depth = getattr(locking._held, "depth", 0)
        seen.append((connection.in_atomic_block, depth, [change.key for change in changes]))

    entries_applied.connect(receiver)
    try:
        outcomes = entries_apply_batch([put("after/a", "1"), put("after/b", "2")])
    finally:
        entries_applied.disconnect(receiver)
    assert [outcome.error for outcome in outcomes] == [None, None]
    assert seen == [(False, 0, ["after/a", "after/b"])]
