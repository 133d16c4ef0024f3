"""POST /api/v1/import: each item written as a PUT would be (scopes, token prefix, ACL,
schema), equal ones skipped, refused ones reported without stopping the others."""

import json

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from accounts.scopes import READ, WRITE
from kv.models import Entry
from kv.policy import acl_rule_put, schema_put
from kv.selectors import merkle_recompute, store_state
from kv.services import entry_put

pytestmark = pytest.mark.django_db


def send(client, *items):
    return client.post(
        "/api/v1/import", data=json.dumps({"items": list(items)}), content_type="application/json"
    )


def test_items_are_written_then_skipped_the_second_time(api):
    items = [
        {"key": "app/a", "value": {"n": 1}},
        {"key": "app/b", "value": [1, 2, 123456789012345678901234567890]},
        {"key": "app/c", "value": "x", "expires_at": 4_000_000_000_000, "mode": "cdwr-dwr---r"},
    ]
    first = send(api, *items)
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["written"], body["skipped"], body["refused"]) == (3, 0, 0)
    assert Entry.objects.get(key="app/b").value == "[1,2,123456789012345678901234567890]"
    c = Entry.objects.get(key="app/c")
    assert c.expires_at == 4_000_000_000_000 and c.mode_string == "cdwr-dwr---r"
    revision = store_state().revision
    again = send(api, *items).json()
    assert (again["written"], again["skipped"]) == (0, 3)
    assert store_state().revision == revision
    assert merkle_recompute()[1] == store_state().merkle_root


def test_an_equal_value_in_another_key_order_is_skipped(api):
    entry_put(key="app/a", value='{"x":1,"y":2}')
    body = send(api, {"key": "app/a", "value": {"y": 2, "x": 1}}).json()
    assert body["results"][0] == {"status": "skipped", "detail": "already equal"}
    body = send(api, {"key": "app/a", "value": {"y": 2, "x": 1.0}}).json()
    assert body["written"] == 1  # 1.0 is not 1


def test_a_changed_value_expiry_or_meta_is_written(api, root_user):
    entry_put(key="app/a", value="1")
    assert (
        send(api, {"key": "app/a", "value": 1, "expires_at": 4_000_000_000_000}).json()["written"]
        == 1
    )
    assert send(api, {"key": "app/a", "value": 1, "expires_at": 4_000_000_000_000,
                      "owner": "root", "mode": 0}).json()["written"] == 1  # fmt: skip
    entry = Entry.objects.get(key="app/a")
    assert entry.mode == 0 and entry.owner == "root"


def test_a_refused_item_does_not_stop_the_others(api):
    schema_put(prefix="typed/", schema={"type": "object", "required": ["n"]})
    body = send(
        api,
        {"key": "typed/a", "value": {"n": 1}},
        {"key": "typed/b", "value": {"m": 1}},
        {"key": "_sys/x", "value": 1},
        {"key": "typed/c", "value": {"n": 3}, "owner": "nobody"},
        {"key": "app/d", "value": 1, "extra": 1},
        {"key": "app/e", "value": 1, "mode": "bogus"},
        {"key": "typed/f", "value": {"n": 6}},
    ).json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["written", "refused", "refused", "refused", "refused", "refused", "written"]
    codes = [r.get("code") for r in body["results"]]
    assert codes[1] == "schema_violation" and codes[2] == "invalid_key"
    assert codes[3] == "invalid" and codes[5] == "invalid_mode"
    assert "'extra'" in body["results"][4]["detail"]
    assert set(Entry.objects.filter(key__startswith="typed/").values_list("key", flat=True)) == {
        "typed/a", "typed/f"
    }  # fmt: skip


def test_an_expired_item_is_skipped(api):
    body = send(api, {"key": "app/old", "value": 1, "expires_at": 1000}).json()
    assert body["results"][0] == {"status": "skipped", "detail": "already expired"}
    assert not Entry.objects.filter(key="app/old").exists()


def test_acl_and_token_prefix_apply_per_item(make_client, root_user):
    Group.objects.create(name="ops")
    acl_rule_put(prefix="ops/", owner=None, group="ops", mode=0o7740)  # only the group creates
    user = User.objects.create_user(username="bob")
    client = make_client(user=user, scopes=[READ, WRITE], prefix="team/")
    body = send(client, {"key": "team/a", "value": 1}, {"key": "ops/a", "value": 1}).json()
    assert [r["status"] for r in body["results"]] == ["written", "refused"]
    assert body["results"][1]["code"] == "forbidden"
    anyone = make_client(user=user, scopes=[READ, WRITE])
    body = send(anyone, {"key": "ops/a", "value": 1}, {"key": "team/b", "value": 1,
                                                       "owner": "root"}).json()  # fmt: skip
    assert body["results"][0]["code"] == "forbidden"  # the rule's c bits
    assert body["results"][1]["status"] == "written"  # bob creates it, so may give it away
    assert Entry.objects.get(key="team/b").owner == "root"
    taken = send(anyone, {"key": "team/b", "value": 2, "owner": "bob"}).json()
    assert taken["results"][0]["code"] == "forbidden"  # not bob's any more: no meta for him
    assert Entry.objects.get(key="team/b").value == "1"


def test_the_whole_request_needs_write_and_a_list_of_items(make_client, anon, api):
    assert send(anon, {"key": "a", "value": 1}).status_code == 401
    assert send(make_client(scopes=[READ]), {"key": "a", "value": 1}).status_code == 403
    for body in ("[]", '{"items": 3}', "{}", "nonsense"):
        answer = api.post("/api/v1/import", data=body, content_type="application/json")
        assert answer.status_code == 400, body
    too_many = send(api, *({"key": f"k{i}", "value": i} for i in range(1001)))
    assert too_many.status_code == 400
    assert not Entry.objects.filter(key__startswith="k").exists()


def test_a_read_only_node_refuses_the_batch(api, settings):
    settings.KVS_READ_ONLY = True
    assert send(api, {"key": "a", "value": 1}).status_code == 403


def test_a_key_given_twice_in_one_batch_keeps_the_later_line(api):
    body = send(
        api,
        {"key": "app/twice", "value": 1},
        {"key": "app/twice", "value": 2},
        {"key": "app/twice", "value": 2},
    ).json()
    assert [r["status"] for r in body["results"]] == ["written", "written", "skipped"]
    assert Entry.objects.get(key="app/twice").value == "2"
    history = api.get("/api/v1/history/app/twice").json()["versions"]
    assert [v["value"] for v in history] == [2, 1]
    assert merkle_recompute()[1] == store_state().merkle_root
