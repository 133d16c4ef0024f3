"""History versions name their writer and node; POST /api/v1/history/{key}/revert writes an old
version's value again, through the checks of a PUT."""

import uuid

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from audit.models import AuditEvent
from cluster.node import local_node
from kv import services
from kv.models import Entry

from .helpers import assert_error, created, expire, put_json, url

pytestmark = pytest.mark.django_db
BASIC = ["read", "write", "delete"]


def history(client, key: str) -> list[dict]:
    response = client.get(url(key, base="/api/v1/history/"))
    assert response.status_code == 200, response.content
    return response.json()["versions"]


def revert(client, key: str, body):
    return client.post(url(key, base="/api/v1/history/") + "/revert", data=body, format="json")


def test_history_versions_carry_their_actor_and_node(api, make_client):
    alice = make_client(user=User.objects.create(username="alice"))
    created(alice, "h", 1)
    put_json(api, "h", 2)
    services.entry_put(key="h", value="3")  # a system write: no actor
    versions = history(api, "h")
    assert [v["actor"] for v in versions] == [None, "root", "alice"]
    assert {v["node"] for v in versions} == {local_node().node_id}
    assert all(v["node"] == v["origin"] for v in versions)


def test_an_expiry_has_no_actor_and_a_delete_names_its_deleter(api):
    created(api, "gone", 1, ttl=60)
    expire("gone")
    services.entries_expire()
    created(api, "del", 1)
    assert api.delete(url("del")).status_code == 204
    assert [v["actor"] for v in history(api, "gone")] == [None, "root"]
    assert [v["actor"] for v in history(api, "del")] == ["root", "root"]


def test_revert_writes_the_old_value_as_the_newest_version_with_the_put_answer(api):
    first = created(api, "cfg", {"n": 1})["version"]
    put_json(api, "cfg", {"n": 2})
    response = revert(api, "cfg", {"version": first})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"key", "version", "timestamp", "hlc", "revision", "expires_at"}
    assert body["key"] == "cfg" and body["version"] != first
    assert api.get(url("cfg")).json()["value"] == {"n": 1}
    versions = history(api, "cfg")
    assert [v["value"] for v in versions] == [{"n": 1}, {"n": 2}, {"n": 1}]
    assert versions[0]["version"] == body["version"] and versions[0]["actor"] == "root"
    event = AuditEvent.objects.filter(target="cfg").order_by("-seq").first()
    assert (event.action, event.actor) == ("kv.put", "root")
    assert event.detail["via"] == "revert" and event.detail["reverted_from"] == first


def test_reverting_a_deleted_key_recreates_it_with_201(api):
    first = created(api, "k", "v1")["version"]
    assert api.delete(url("k")).status_code == 204
    response = revert(api, "k", {"version": first})
    assert response.status_code == 201, response.content
    assert api.get(url("k")).json()["value"] == "v1"


def test_reverting_to_a_deletion_is_400_and_writes_nothing(api):
    created(api, "k", "v1")
    assert api.delete(url("k")).status_code == 204
    tombstone = history(api, "k")[0]["version"]
    before = Entry.objects.get(key="k").revision
    assert "delete" in assert_error(revert(api, "k", {"version": tombstone}), 400)["detail"]
    assert Entry.objects.get(key="k").revision == before


@pytest.fixture
def people(make_client):
    """olivia owns `team/x` (mode: group may read but not write); gus is in the group."""
    team = Group.objects.create(name="team")
    owner = User.objects.create(username="olivia")
    member = User.objects.create(username="gus")
    member.groups.add(team)
    services.entry_put(key="team/x", value='"one"')
    services.entry_put(key="team/x", value='"two"')
    services.entry_meta_set(
        key="team/x", owner="olivia", group="team", mode=0o7401, fields={"owner", "group", "mode"}
    )  # owner cdwr, group r, others r
    return {
        "owner": make_client(scopes=BASIC, user=owner),
        "member": make_client(scopes=BASIC, user=member),
        "reader": make_client(scopes=["read"], user=owner),
    }


def first_version(key: str) -> str:
    return history_of(key)[-1]


def history_of(key: str) -> list[str]:
    from kv.selectors import entry_history

    entry, previous = entry_history(key=key)
    return [str(v.version) for v in [entry, *previous]]


def test_revert_needs_write_on_the_key(people):
    old = first_version("team/x")
    before = history_of("team/x")
    assert_error(revert(people["member"], "team/x", {"version": old}), 403)
    assert history_of("team/x") == before
    response = revert(people["owner"], "team/x", {"version": old})
    assert response.status_code == 200, response.content
    assert Entry.objects.get(key="team/x").value == '"one"'
    assert Entry.objects.get(key="team/x").actor == "olivia"


def test_revert_needs_the_write_scope(people):
    old = first_version("team/x")
    assert_error(revert(people["reader"], "team/x", {"version": old}), 403)
    assert Entry.objects.get(key="team/x").value == '"two"'


def test_revert_needs_read_on_the_version(people, make_client):
    stranger = make_client(scopes=BASIC, user=User.objects.create(username="otto"))
    services.entry_meta_set(key="team/x", mode=0o7400, fields={"mode"})  # others: nothing
    assert_error(revert(stranger, "team/x", {"version": first_version("team/x")}), 403)


def test_a_value_the_schema_now_refuses_is_400_and_nothing_is_written(api):
    old = created(api, "users/ann", {"name": 5})["version"]
    put_json(api, "users/ann", {"name": "Ann"})
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    assert api.put("/api/v1/schemas/users/", schema, format="json").status_code == 201
    before = history_of("users/ann")
    assert_error(revert(api, "users/ann", {"version": old}), 400)
    assert history_of("users/ann") == before
    assert api.get(url("users/ann")).json()["value"] == {"name": "Ann"}


def test_an_unknown_key_or_version_is_404(api):
    assert_error(revert(api, "never", {"version": str(uuid.uuid4())}), 404)
    created(api, "k", 1)
    assert_error(revert(api, "k", {"version": str(uuid.uuid4())}), 404)


@pytest.mark.parametrize(
    "body",
    [{}, {"version": "nope"}, {"version": 5}, {"version": None}, [], "x", {"version": "a", "b": 1}],
)
def test_bad_input_is_400(api, body):
    created(api, "k", 1)
    assert_error(revert(api, "k", body), 400)
    assert len(history(api, "k")) == 1


def test_a_bad_key_is_400(api):
    assert_error(revert(api, "a//b", {"version": str(uuid.uuid4())}), 400)
