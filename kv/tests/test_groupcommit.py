"""Group commit: concurrent client writes in one process share a batch, each its own answer."""

import threading
import time
import uuid
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from cluster.node import local_node, node_mode
from kv import groupcommit, rows, selectors, services
from kv.acl import Caller
from kv.locking import store_write_lock
from kv.models import AclRule, Entry, PrefixSchema, StoreState
from kv.signals import entries_applied
from kvsite.exceptions import Conflict, Forbidden

from .test_services import assert_merkle_consistent

pytestmark = pytest.mark.django_db(transaction=True)
ALICE = Caller(username="alice")


@pytest.fixture(autouse=True)
def state_row():
    StoreState.objects.get_or_create(pk=1)  # a flushed database (transaction=True) has none
    # read the node's identity and mode before the threads do: the test database is SQLite in
    # memory with a shared cache, where readers fail at once on a table being written
    local_node()
    node_mode()


@contextmanager
def store_held():
    """Hold the store's writer lock: the file lock on SQLite, the state row on PostgreSQL."""
    if connection.vendor == "sqlite":
        with store_write_lock():
            yield
        return
    with transaction.atomic():
        rows.state_lock()
        yield


def wait_until(condition, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def in_thread(results: dict, name: str, call) -> threading.Thread:
    def run():
        try:
            results[name] = call()
        except Exception as error:  # a KvsError is an answer; anything else fails the test
            results[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_writes_queued_while_the_lock_is_held_share_one_batch_and_keep_their_own_answers():
    services.entry_put(key="held", value="0", caller=ALICE)
    AclRule.objects.create(prefix="locked/", owner="root", mode=0o7700)
    PrefixSchema.objects.create(prefix="typed/", schema={"type": "integer"})
    base = selectors.store_state().revision
    batches = []
    entries_applied.connect(receiver := lambda sender, changes, **kw: batches.append(changes))
    calls = {f"ok{n}": (f"k/{n}", None) for n in range(20)}
    calls |= {f"cas{n}": ("held", str(uuid.uuid4())) for n in range(5)}
    calls |= {f"acl{n}": (f"locked/{n}", None) for n in range(5)}
    results: dict = {}
    try:
        with store_held():  # the leader waits here while the others queue behind it
            threads = [
                in_thread(
                    results,
                    name,
                    lambda key=key, cas=cas: services.entry_put(
                        key=key, value="1", caller=ALICE, cas=cas
                    ),
                )
                for name, (key, cas) in calls.items()
            ]
            threads.append(
                in_thread(
                    results,
                    "schema",
                    lambda: services.entry_put(key="typed/x", value='"no"', caller=ALICE),
                )
            )
            wait_until(lambda: len(groupcommit._queue) == len(calls), timeout=10)
        for thread in threads:
            thread.join(timeout=30)
    finally:
        entries_applied.disconnect(receiver)
    assert type(results.pop("schema")).__name__ == "SchemaViolation"  # refused before queueing
    assert all(isinstance(results[f"cas{n}"], Conflict) for n in range(5))
    assert all(isinstance(results[f"acl{n}"], Forbidden) for n in range(5))
    written = sorted(results[f"ok{n}"][0].revision for n in range(20))
    assert written == list(range(base + 1, base + 21))  # consecutive and unique
    assert all(results[f"ok{n}"][0].key == f"k/{n}" for n in range(20))
    assert len(batches) == 1 and len(batches[0]) == 20  # one commit, one announcement
    assert selectors.store_state().revision == base + 20
    assert not groupcommit._leading and not groupcommit._queue
    assert_merkle_consistent()


def test_many_threads_writing_at_once_each_get_their_answer(settings):
    settings.KVS_GROUP_COMMIT_MAX = 4  # several batches, the lead handed on between them
    base = selectors.store_state().revision
    results: dict = {}
    threads = [
        in_thread(results, n, lambda n=n: services.entry_put(key=f"t/{n % 7}", value=str(n)))
        for n in range(40)
    ]
    for thread in threads:
        thread.join(timeout=60)
    assert not [r for r in results.values() if isinstance(r, Exception)]
    revisions = sorted(results[n][0].revision for n in range(40))
    assert revisions == list(range(base + 1, base + 41))
    assert not groupcommit._leading and not groupcommit._queue
    for key in {f"t/{n % 7}" for n in range(40)}:
        last = max((r[0] for r in results.values() if r[0].key == key), key=lambda e: e.revision)
        assert Entry.objects.get(key=key).value == last.value
    assert_merkle_consistent()


def test_a_database_error_in_a_batch_lands_on_the_write_that_caused_it(monkeypatch):
    real, real_taken = groupcommit.entries_apply_batch, groupcommit.entries_apply_taken
    calls = []

    def failing(take):
        def taking():
            writes, _keys = take()
            calls.append(len(writes))
            raise RuntimeError("disk full")

        return real_taken(taking)  # under the lock, as the real one

    def alone(writes, *, keys=()):
        calls.append(len(writes))
        return real(writes, keys=keys)

    monkeypatch.setattr(groupcommit, "entries_apply_taken", failing)
    monkeypatch.setattr(groupcommit, "entries_apply_batch", alone)
    results: dict = {}
    with store_held():
        threads = [
            in_thread(results, n, lambda n=n: services.entry_put(key=f"e/{n}", value="1"))
            for n in range(3)
        ]
        wait_until(lambda: len(groupcommit._queue) == 3, timeout=10)
    for thread in threads:
        thread.join(timeout=30)
    assert calls == [3, 1, 1, 1]  # the batch, then each write alone
    assert all(results[n][1] for n in range(3))


def test_each_write_of_a_shared_batch_is_audited_with_its_own_request(rf):
    from audit.context import serving
    from audit.models import AuditEvent

    def put_from(n: int):
        request = rf.put(f"/api/v1/kv/a/{n}", REMOTE_ADDR=f"10.0.0.{n}")
        with serving(request):
            return services.entry_put(key=f"a/{n}", value="1", caller=ALICE)

    results: dict = {}
    with store_held():
        threads = [in_thread(results, n, lambda n=n: put_from(n)) for n in range(1, 9)]
        wait_until(lambda: len(groupcommit._queue) == 8, timeout=10)
    for thread in threads:
        thread.join(timeout=30)
    events = AuditEvent.objects.filter(action="kv.put", target__startswith="a/")
    assert {(e.target, e.remote, e.actor) for e in events} == {
        (f"a/{n}", f"10.0.0.{n}", "alice") for n in range(1, 9)
    }
    assert sorted(e.detail["revision"] for e in events) == sorted(
        results[n][0].revision for n in range(1, 9)
    )
