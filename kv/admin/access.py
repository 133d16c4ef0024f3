"""Who the admin acts as, in the ACL's terms, and which entries that caller may read."""

from django.conf import settings
from django.db.models import F, Q
from django.db.models.lookups import GreaterThan

from accounts.admin_access import admin_grants
from accounts.scopes import ADMIN_ACL

from ..acl import SYSTEM, Caller, caller_may, caller_may_set_meta, mode_bit
from ..callers import user_caller
from ..models import Entry

ACL_ADMIN_PERMISSION = "kv.change_aclrule"


def admin_caller(request) -> Caller:
    """The admin user as a Caller, built like the API's `request_caller`.

    Superusers bypass ACLs. Other staff act as their username and groups; the `admin:acl` scope
    or a Django permission to change ACL rules makes them an ACL admin: they may change any
    entry's owner, group and mode.
    """
    if not settings.KVS_AUTH_ENABLED:
        return SYSTEM
    cached = getattr(request, "_kv_caller", None)
    if cached is None:
        user = request.user
        acl_admin = admin_grants(request, ADMIN_ACL) or user.has_perm(ACL_ADMIN_PERMISSION)
        cached = user_caller(user, acl_admin=acl_admin)
        request._kv_caller = cached
    return cached


def entry_may_change(caller: Caller, entry: Entry) -> bool:
    """Whether the entry's form lets `caller` change anything: its value (w) or its meta."""
    acl = {"owner": entry.owner, "group": entry.group, "mode": entry.mode}
    return caller_may(caller, "w", **acl) or caller_may_set_meta(caller, owner=entry.owner)


def entry_may_delete(caller: Caller, entry: Entry) -> bool:
    return caller_may(caller, "d", owner=entry.owner, group=entry.group, mode=entry.mode)


def _grants(who: str, perm: str) -> Q:
    bit = mode_bit(who, perm)
    return Q(GreaterThan(F("mode").bitand(bit), 0))


def readable_by(caller: Caller) -> Q:
    """A filter of the records whose mode lets `caller` read them (kv.acl.caller_may in SQL).

    The caller's class decides alone: the owner gets the owner bits even if the group bits
    would allow more, as in caller_class.
    """
    if caller.bypass:
        return Q()
    branches = []
    not_owner = Q()
    if caller.username is not None:
        is_owner = Q(owner=caller.username)
        branches.append(is_owner & _grants("owner", "r"))
        not_owner = ~is_owner
    not_member = Q()
    if caller.groups:
        in_group = Q(group__in=sorted(caller.groups))
        branches.append(not_owner & in_group & _grants("group", "r"))
        not_member = ~in_group
    branches.append(not_owner & not_member & _grants("others", "r"))
    readable = branches[0]
    for branch in branches[1:]:
        readable |= branch
    return readable
