"""A small store with every kind of record, and a dump of a store to compare two of them."""

from django.contrib.auth.models import Group

from accounts.models import ApiToken, User
from accounts.scopes import ALL, READ
from accounts.services import group_create, token_create, user_create
from cluster.models import LocalNode, Member, PeerCursor
from kv.models import AclRule, Entry, EntryVersion, PrefixSchema
from kv.policy import acl_rule_put, schema_put
from kv.selectors import merkle_leaves, store_state
from kv.services import entry_delete, entry_put


def store_fill(*, keys: int = 20, now: int = 1_700_000_000_000) -> None:
    """Users, groups, tokens, rules, schemas; keys with history, a TTL and a tombstone."""
    root = User.objects.create_superuser(username="root", password="root-password-1")
    group_create(name="ops")
    user_create(username="alice", password="alice-password-1", groups=["ops"])
    token_create(user=root, scopes=[ALL], name="bootstrap")
    token_create(user=User.objects.get(username="alice"), scopes=[READ], prefix="app/")
    acl_rule_put(prefix="ops/", owner=None, group="ops", mode=0o7760)
    schema_put(prefix="typed/", schema={"type": "object", "required": ["n"]})
    for i in range(keys):
        entry_put(key=f"app/k{i:04d}", value=f'{{"n":{i}}}', now=now + i)
    for i in range(0, keys, 3):
        entry_put(key=f"app/k{i:04d}", value=f'{{"n":{i},"again":true}}', now=now + keys + i)
    entry_put(key="session/1", value='"x"', ttl=3600, now=now)
    entry_put(key="typed/a", value='{"n":12345678901234567890123}', now=now)
    entry_delete(key="app/k0001", now=now + 5 * keys)
    Member.objects.create(node_id="node2", url="http://127.0.0.1:9", joined_at=now, incarnation=3)
    PeerCursor.objects.create(node_id="node2", revision=7)


def store_dump() -> dict:
    """Everything a restore must reproduce, without database ids."""
    state = store_state()
    return {
        "state": (state.revision, state.hlc, state.merkle_root),
        "node": list(LocalNode.objects.values_list("node_id", "joined_at")),
        "leaves": merkle_leaves(),
        "entries": list(
            Entry.objects.order_by("key").values_list(
                "key",
                "value",
                "version",
                "hlc",
                "origin",
                "origin_joined_at",
                "deleted",
                "expires_at",
                "owner",
                "group",
                "mode",
                "revision",
                "actor",
                "digest",
                "bucket",
            )
        ),  # fmt: skip
        "history": sorted(
            EntryVersion.objects.values_list(
                "key",
                "value",
                "version",
                "hlc",
                "origin",
                "deleted",
                "expires_at",
                "owner",
                "group",
                "mode",
                "actor",
            )
        ),  # fmt: skip
        "users": list(
            User.objects.order_by("username").values_list(
                "username",
                "password",
                "email",
                "is_superuser",
                "is_staff",
                "is_active",
                "date_joined",
                "last_login",
            )
        ),  # fmt: skip
        "memberships": sorted(
            User.groups.through.objects.values_list("user__username", "group__name")
        ),
        "groups": sorted(Group.objects.values_list("name", flat=True)),
        "tokens": list(
            ApiToken.objects.order_by("id").values_list(
                "id",
                "user__username",
                "name",
                "secret_hash",
                "scopes",
                "prefix",
                "created_at",
                "expires_at",
                "revoked_at",
            )
        ),  # fmt: skip
        "rules": list(
            AclRule.objects.values_list("prefix", "owner", "group", "mode", "updated_at")
        ),
        "schemas": list(PrefixSchema.objects.values_list("prefix", "schema", "updated_at")),
        "members": list(Member.objects.values_list("node_id", "url", "joined_at", "incarnation")),
        "cursors": list(PeerCursor.objects.values_list("node_id", "revision")),
    }
