"""Security records: mirrored into `_sys/` entries here, materialized from other nodes' entries."""

import uuid

import orjson
import pytest
from django.contrib.auth.models import Group

from accounts.models import ApiToken, User
from accounts.services import (
    group_create,
    group_delete,
    group_update,
    token_create,
    user_delete,
    user_update,
)
from cluster.records import record_key
from kv import selectors, services
from kv.hlc import hlc_from_ms, wall_ms
from kv.models import AclRule, Entry, PrefixSchema
from kv.policy import acl_rule_delete, acl_rule_put, schema_delete, schema_put
from kv.versions import Version

pytestmark = pytest.mark.django_db


@pytest.fixture
def apply(django_capture_on_commit_callbacks):
    """Apply versions as replication does, running the on-commit work (materializing) after."""

    def run(*versions: Version) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            services.versions_apply(list(versions))

    return run


def stored(key: str) -> dict | None:
    entry = Entry.objects.filter(key=key).first()
    return None if entry is None or entry.deleted else orjson.loads(entry.value)


def from_peer(key: str, record: dict | None, *, ms_ahead: int = 1_000) -> Version:
    return Version(
        key=key,
        version=uuid.uuid4(),
        hlc=hlc_from_ms(wall_ms() + ms_ahead),
        origin="peer-node",
        origin_joined_at=1,
        deleted=record is None,
        value=None if record is None else orjson.dumps(record).decode(),
    )


def peer_user(username: str, *, groups: list[str]) -> dict:
    return {
        "username": username,
        "email": "",
        "password": "!",
        "first_name": "",
        "last_name": "",
        "is_superuser": False,
        "is_staff": False,
        "is_active": True,
        "date_joined": "2026-01-01T00:00:00+00:00",
        "groups": groups,
    }


def test_users_groups_and_memberships_are_mirrored():
    ops = Group.objects.create(name="ops")
    user = User.objects.create_user(username="ann", password="pw-123456789")
    user.groups.add(ops)
    record = stored(record_key("users", "ann"))
    assert record["groups"] == ["ops"]
    assert (
        record["password"].startswith(("md5$", "pbkdf2_"))
        and "pw-123456789" not in record["password"]
    )
    assert stored(record_key("groups", "ops")) == {"name": "ops"}
    user.delete()
    assert stored(record_key("users", "ann")) is None


def test_tokens_are_mirrored_as_hashes_and_revocations_follow():
    user = User.objects.create_user(username="tom")
    issued = token_create(user=user, scopes=["read"])
    record = stored(record_key("tokens", issued.token.id))
    assert record["secret_hash"] == issued.token.secret_hash
    assert issued.secret not in orjson.dumps(record).decode()
    issued.token.revoked_at = issued.token.created_at
    issued.token.save()
    assert stored(record_key("tokens", issued.token.id))["revoked_at"] is not None


def test_rules_with_slashes_get_encoded_record_keys():
    acl_rule_put(prefix="team/", owner=None, group=None, mode=0o7000)
    assert stored("_sys/acl/team%2F")["mode"] == 0o7000


def test_records_from_a_peer_are_materialized_and_not_mirrored_back(apply):
    revision = selectors.store_state().revision
    apply(from_peer(record_key("groups", "ops"), {"name": "ops"}))
    user = {
        "username": "bob",
        "email": "b@example.com",
        "password": "!",
        "first_name": "",
        "last_name": "",
        "is_superuser": False,
        "is_staff": False,
        "is_active": True,
        "date_joined": "2026-01-01T00:00:00+00:00",
        "groups": ["ops"],
    }
    apply(from_peer(record_key("users", "bob"), user))
    bob = User.objects.get(username="bob")
    assert list(bob.groups.values_list("name", flat=True)) == ["ops"]
    assert selectors.store_state().revision == revision + 2  # nothing written back


def test_a_token_that_arrives_before_its_user_is_materialized_when_the_user_does(apply):
    token = {
        "id": "tok_remote",
        "user": "carl",
        "name": "ci",
        "secret_hash": "ab" * 32,
        "scopes": ["read"],
        "prefix": None,
        "created_at": "2026-01-01T00:00:00+00:00",
        "expires_at": None,
        "revoked_at": None,
    }
    apply(from_peer(record_key("tokens", "tok_remote"), token))
    assert not ApiToken.objects.filter(id="tok_remote").exists()
    carl = {
        "username": "carl",
        "email": "",
        "password": "!",
        "first_name": "",
        "last_name": "",
        "is_superuser": False,
        "is_staff": False,
        "is_active": True,
        "date_joined": "2026-01-01T00:00:00+00:00",
        "groups": [],
    }
    apply(from_peer(record_key("users", "carl"), carl))
    assert ApiToken.objects.get(id="tok_remote").user.username == "carl"
    apply(from_peer(record_key("tokens", "tok_remote"), None, ms_ahead=2_000))
    assert not ApiToken.objects.filter(id="tok_remote").exists()


def test_a_rule_deleted_on_a_peer_is_deleted_here(apply):
    acl_rule_put(prefix="x/", owner=None, group=None, mode=1)
    apply(from_peer(record_key("acl", "x/"), None))
    assert not AclRule.objects.filter(prefix="x/").exists()


# --- Deletions replicate exactly -----------------------------------------------------------------


def user_groups_recorded(username: str) -> list[str]:
    return stored(record_key("users", username))["groups"]


def test_deleting_a_group_takes_it_out_of_its_members_records():
    ops = Group.objects.create(name="ops")
    dev = Group.objects.create(name="dev")
    for username in ("ann", "bob"):
        User.objects.create_user(username=username).groups.add(ops, dev)
    assert user_groups_recorded("ann") == ["dev", "ops"]
    group_delete(group=ops)
    assert stored(record_key("groups", "ops")) is None
    assert user_groups_recorded("ann") == user_groups_recorded("bob") == ["dev"]
    # Re-created here, the group starts empty, and so do the records that peers materialize.
    group_create(name="ops")
    assert list(Group.objects.get(name="ops").user_set.all()) == []
    assert user_groups_recorded("ann") == ["dev"]


def test_a_group_recreated_here_is_empty_even_where_old_records_still_list_it(apply):
    # A record from before group deletions were mirrored (or from a peer that had not heard of
    # the deletion yet) still lists `ops`: creating `ops` anew must not make its user a member.
    apply(from_peer(record_key("users", "carl"), peer_user("carl", groups=["ops", "dev"])))
    apply(from_peer(record_key("groups", "dev"), {"name": "dev"}))
    assert user_groups_recorded("carl") == ["ops", "dev"]
    group_create(name="ops")
    assert user_groups_recorded("carl") == ["dev"]
    assert list(User.objects.get(username="carl").groups.values_list("name", flat=True)) == ["dev"]


def test_a_peer_applying_the_origins_records_ends_with_the_same_empty_group(apply):
    # What the origin publishes for "delete ops, create ops again", applied on a peer.
    apply(from_peer(record_key("groups", "ops"), {"name": "ops"}, ms_ahead=1_000))
    apply(from_peer(record_key("users", "ann"), peer_user("ann", groups=["ops"]), ms_ahead=1_000))
    assert User.objects.get(username="ann").groups.filter(name="ops").exists()
    apply(
        from_peer(record_key("users", "ann"), peer_user("ann", groups=[]), ms_ahead=2_000),
        from_peer(record_key("groups", "ops"), None, ms_ahead=2_000),
    )
    assert not Group.objects.filter(name="ops").exists()
    apply(from_peer(record_key("groups", "ops"), {"name": "ops"}, ms_ahead=3_000))
    assert list(Group.objects.get(name="ops").user_set.all()) == []


def test_renaming_a_group_renames_it_in_its_members_records():
    ops = Group.objects.create(name="ops")
    User.objects.create_user(username="ann").groups.add(ops)
    ops.name = "sre"
    ops.save()
    assert stored(record_key("groups", "ops")) is None
    assert stored(record_key("groups", "sre")) == {"name": "sre"}
    assert user_groups_recorded("ann") == ["sre"]


def test_removing_members_is_mirrored_each_way():
    ops = Group.objects.create(name="ops")
    ann = User.objects.create_user(username="ann")
    bob = User.objects.create_user(username="bob")
    group_update(group=ops, members=["ann", "bob"])
    assert user_groups_recorded("ann") == user_groups_recorded("bob") == ["ops"]
    group_update(group=ops, remove=["ann"])
    assert (user_groups_recorded("ann"), user_groups_recorded("bob")) == ([], ["ops"])
    user_update(user=bob, groups=[])
    assert user_groups_recorded("bob") == []
    bob.groups.add(ops)
    ops.user_set.clear()  # the reverse clear: Django names no users in its signal
    assert user_groups_recorded("bob") == []
    ann.groups.add(ops)
    user_delete(user=ann)
    assert stored(record_key("users", "ann")) is None


def test_a_membership_removed_on_a_peer_is_removed_here(apply):
    apply(from_peer(record_key("groups", "ops"), {"name": "ops"}))
    apply(from_peer(record_key("users", "ann"), peer_user("ann", groups=["ops"])))
    apply(from_peer(record_key("users", "ann"), peer_user("ann", groups=[]), ms_ahead=2_000))
    assert not User.objects.get(username="ann").groups.exists()
    apply(from_peer(record_key("users", "ann"), None, ms_ahead=3_000))
    assert not User.objects.filter(username="ann").exists()


def test_deleting_a_rule_or_a_schema_here_tombstones_its_record_and_a_peers_deletes_it(apply):
    acl_rule_put(prefix="team/", owner=None, group=None, mode=0o7000)
    schema_put(prefix="conf/", schema={"type": "object"})
    acl_rule_delete(prefix="team/")
    schema_delete(prefix="conf/")
    for key in (record_key("acl", "team/"), record_key("schemas", "conf/")):
        entry = Entry.objects.get(key=key)
        assert entry.deleted and entry.value is None
    schema = {"prefix": "p/", "schema": {"type": "integer"}}
    apply(from_peer(record_key("schemas", "p/"), schema))
    assert PrefixSchema.objects.filter(prefix="p/").exists()
    apply(from_peer(record_key("schemas", "p/"), None, ms_ahead=2_000))
    assert not PrefixSchema.objects.filter(prefix="p/").exists()
    assert services.entry_put(key="p/x", value='"not an integer"')  # no schema applies any more
