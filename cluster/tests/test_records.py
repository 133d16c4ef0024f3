"""Security records: mirrored into `_sys/` entries here, materialized from other nodes' entries."""

import uuid

import orjson
import pytest
from django.contrib.auth.models import Group

from accounts.models import ApiToken, User
from accounts.services import token_create
from cluster.records import record_key
from kv import selectors, services
from kv.hlc import hlc_from_ms, wall_ms
from kv.models import AclRule, Entry
from kv.policy import acl_rule_put
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
