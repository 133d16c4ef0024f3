"""Who is asking, in the ACL's terms: a Caller built from an API request or an admin session."""

from collections.abc import Iterable

from django.conf import settings

from accounts.models import User
from accounts.permissions import Credential, request_credential
from accounts.scopes import ADMIN_ACL

from .acl import ANONYMOUS, SYSTEM, Caller


def user_caller(user, *, acl_admin: bool) -> Caller:
    """An authenticated user as a Caller (its group names are cached on the user object, which
    the token cache keeps for a moment)."""
    groups = getattr(user, "_kvs_group_names", None)
    if groups is None:
        groups = frozenset(user.groups.values_list("name", flat=True))
        user._kvs_group_names = groups
    return Caller(
        username=user.username, groups=groups, superuser=user.is_superuser, acl_admin=acl_admin
    )


def users_groups_load(users: Iterable) -> None:
    """Read the group names of those of `users` that have none cached, in one query, so that
    `user_caller` reads no database for them (open websockets renew their callers with this)."""
    pending = [user for user in users if not hasattr(user, "_kvs_group_names")]
    if not pending:
        return
    names: dict[int, set[str]] = {user.pk: set() for user in pending}
    memberships = User.groups.through.objects.filter(user_id__in=list(names))
    for user_id, group in memberships.values_list("user_id", "group__name"):
        names[user_id].add(group)
    for user in pending:
        user._kvs_group_names = frozenset(names[user.pk])


def credential_caller(credential: Credential | None) -> Caller:
    """The Caller acting with `credential` (None: anonymous): its user, and the admin:acl scope."""
    if not settings.KVS_AUTH_ENABLED:
        return SYSTEM
    if credential is None:
        return ANONYMOUS
    return user_caller(credential.user, acl_admin=credential.grants(ADMIN_ACL))


def request_caller(request) -> Caller:
    """The caller of an API request or websocket: its user, and the admin:acl scope."""
    if not settings.KVS_AUTH_ENABLED:
        return SYSTEM
    return credential_caller(request_credential(request))
