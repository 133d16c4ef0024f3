"""POST /api/v1/txn: compare, then one branch, atomically, with consecutive revisions."""

import json

import pytest

from accounts.models import User
from accounts.scopes import READ, WRITE
from kv.models import Entry
from kv.policy import acl_rule_put
from kv.selectors import merkle_recompute, store_state
from kv.services import entry_put
from kv.signals import entries_applied

pytestmark = pytest.mark.django_db


def txn(client, compare=(), success=(), failure=()):
    body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
    return client.post("/api/v1/txn", data=json.dumps(body), content_type="application/json")


def put(key, value, **kw):
    return {"op": "put", "key": key, "value": value, **kw}


def test_each_compare_kind_picks_its_branch(api):
    version = entry_put(key="t/a", value='{"n":1}')[0].version
    cases = [
        ({"key": "t/a", "version": str(version)}, True),
        ({"key": "t/a", "version": "00000000-0000-0000-0000-000000000000"}, False),
        ({"key": "t/a", "value": {"n": 1}}, True),
        ({"key": "t/a", "value": {"n": 2}}, False),
        ({"key": "t/none", "absent": True}, True),
        ({"key": "t/a", "absent": True}, False),
    ]
    for compare, expected in cases:
        answer = txn(api, [compare], [{"op": "get", "key": "t/a"}], [{"op": "get", "key": "t/x"}])
        assert answer.status_code == 200, answer.content
        body = answer.json()
        assert body["succeeded"] is expected, compare
        if expected:
            assert body["results"] == [{**body["results"][0], "key": "t/a", "value": {"n": 1}}]
        else:
            assert body["results"] == [{"key": "t/x", "found": False}]


def test_a_branch_applies_with_consecutive_revisions_and_one_announcement(
    api, django_capture_on_commit_callbacks
):
    entry_put(key="t/old", value="1")
    seen = []
    entries_applied.connect(receiver := lambda sender, changes, **kw: seen.append(changes))
    base = store_state().revision
    try:
        with django_capture_on_commit_callbacks(execute=True):
            answer = txn(
                api,
                [{"key": "t/lock", "absent": True}],
                [put("t/lock", "me", ttl="30s"), put("t/b", [1]), {"op": "delete", "key": "t/old"},
                 {"op": "delete", "key": "t/never"}, {"op": "get", "key": "t/b"}],
            )  # fmt: skip
    finally:
        entries_applied.disconnect(receiver)
    body = answer.json()
    assert body["succeeded"]
    lock, b, old, never, got = body["results"]
    assert [lock["revision"], b["revision"], old["revision"]] == [base + 1, base + 2, base + 3]
    assert lock["created"] and lock["expires_at"] is not None and old["deleted"]
    assert never == {"key": "t/never", "deleted": False}
    assert got["value"] == [1] and got["revision"] == base + 2  # sees the put before it
    assert len(seen) == 1 and [c.key for c in seen[0]] == ["t/lock", "t/b", "t/old"]
    assert merkle_recompute()[1] == store_state().merkle_root
    assert txn(api, [{"key": "t/lock", "absent": True}], [put("t/lock", "you")]).json() == {
        "succeeded": False,
        "results": [],
    }


def test_an_acl_refusal_in_either_branch_applies_nothing(make_client):
    bob = User.objects.create_user(username="bob")
    client = make_client(user=bob, scopes=[READ, WRITE])
    acl_rule_put(prefix="locked/", owner="root", group=None, mode=0o7700)
    revision = store_state().revision
    answer = txn(client, [], [put("t/fine", 1)], [put("locked/x", 1)])
    assert answer.status_code == 403 and "locked/x" in answer.json()["detail"]
    assert store_state().revision == revision and not Entry.objects.filter(key="t/fine").exists()
    # a scope the token lacks, in the branch that would not run
    answer = txn(client, [], [put("t/fine", 1)], [{"op": "delete", "key": "t/fine"}])
    assert answer.status_code == 403 and "t/fine" in answer.json()["detail"]
    assert not Entry.objects.filter(key="t/fine").exists()


def test_bad_input_and_the_op_limit_are_400(api, settings):
    for body in (
        [{"key": "t/a"}],  # a compare of no kind
        [{"key": "t/a", "absent": False}],
        [{"key": "t/a", "version": "nope"}],
    ):
        assert txn(api, body).status_code == 400
    assert txn(api, [], [{"op": "rename", "key": "t/a"}]).status_code == 400
    assert txn(api, [], [{"op": "put", "key": "t/a"}]).status_code == 400
    assert txn(api, [], [put("_sys/x", 1)]).status_code == 400
    assert txn(api, [], [put("t/a", 1, ttl="soon")]).status_code == 400
    settings.KVS_TXN_MAX_OPS = 4
    answer = txn(api, [{"key": "t/a", "absent": True}], [put("t/a", 1)] * 2, [put("t/b", 1)] * 2)
    assert answer.status_code == 400 and "at most 4" in answer.json()["detail"]
    assert not Entry.objects.filter(key__startswith="t/").exists()
