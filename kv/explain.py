"""Why the ACL says yes or no: the decisions of the enforcing code, with their reasons in words.

Each answer is computed by the functions that enforce: `accounts.permissions.key_scope_refusal`
(credential, scope, token prefix, as `key_scope_check` raises them), then
`kv.policy.creation_decide` for create and `kv.acl.caller_decide` on the live entry for delete,
write and read (as `kv.services` and `kv.selectors` apply them).
"""

from django.conf import settings

from accounts.models import User
from accounts.permissions import AUTH_JWT, Credential, key_scope_refusal, user_default_scopes
from accounts.scopes import DELETE, READ, WRITE

from . import rows
from .acl import Decision, caller_decide
from .callers import credential_caller
from .hlc import wall_ms
from .keys import key_validate
from .policy import creation_decide

OPERATIONS = {
    "create": ("c", WRITE),
    "delete": ("d", DELETE),
    "write": ("w", WRITE),
    "read": ("r", READ),
}


def key_decide(
    *, key: str, perm: str, credential: Credential | None, now: int | None = None
) -> Decision:
    """Whether `credential` (None: anonymous) may `perm` (c, d, w or r) on `key`, and why.

    Create is judged whether or not the key exists (a PUT of a live key replaces it instead);
    delete, write and read of an absent key are refused (a write of one would create it).
    """
    scope = next(s for p, s in OPERATIONS.values() if p == perm)
    refusal = key_scope_refusal(credential, scope, key)
    if refusal is not None:
        return Decision(False, perm, refusal.source, note=refusal.because)
    caller = credential_caller(credential)
    if perm == "c":
        return creation_decide(caller, key)[0]
    entry = rows.entry_by_key(key)
    if entry is None or not entry.is_live(wall_ms() if now is None else now):
        note = f"No key {key!r}" + (": a write would create it." if perm == "w" else ".")
        return Decision(False, perm, "absent", note=note)
    return caller_decide(caller, perm, owner=entry.owner, group=entry.group, mode=entry.mode)


def login_credential(user: User) -> Credential:
    """The credential of `user`'s own login (a JWT or a session): their default scopes."""
    return Credential(user=user, auth=AUTH_JWT, scopes=user_default_scopes(user))


def decision_out(decision: Decision) -> dict:
    return {
        "allowed": decision.allowed,
        "because": decision.because,
        "rule": decision.rule,
        "class": decision.cls,
        "source": decision.source,
    }


def acl_explain(*, key: str, credential: Credential | None, now: int | None = None) -> dict:
    """For create, delete, write and read of `key`: what `credential` may do, and why."""
    key_validate(key)
    now = wall_ms() if now is None else now
    caller = credential_caller(credential)
    decisions = {
        name: decision_out(key_decide(key=key, perm=perm, credential=credential, now=now))
        for name, (perm, _) in OPERATIONS.items()
    }
    return {
        "key": key,
        "user": credential.user.username if credential is not None else None,
        "superuser": caller.superuser if settings.KVS_AUTH_ENABLED else True,
        "auth": credential.auth if credential is not None else None,
        "token_prefix": credential.prefix if credential is not None else None,
        "decisions": decisions,
    }
