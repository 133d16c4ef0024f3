"""Who may call what: authentication settings, credential scopes and token prefixes."""

from dataclasses import dataclass

from django.conf import settings
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework_simplejwt.tokens import Token

from .models import ApiToken, User
from .scopes import ALL, DELETE, PUBSUB, READ, WRITE, scopes_grant

AUTH_TOKEN, AUTH_JWT, AUTH_SESSION = "token", "jwt", "session"


def user_default_scopes(user: User) -> tuple[str, ...]:
    """The scopes a user's own login (JWT or session) carries: all for superusers."""
    return (ALL,) if user.is_superuser else (READ, WRITE, DELETE, PUBSUB)


@dataclass(frozen=True)
class Credential:
    """The caller as the accounts rules see it: who, how they authenticated, what they may do."""

    user: User
    auth: str  # AUTH_TOKEN, AUTH_JWT or AUTH_SESSION
    scopes: tuple[str, ...]
    prefix: str | None = None  # API tokens only: keys and topics it is confined to

    def grants(self, scope: str) -> bool:
        return scopes_grant(self.scopes, scope)

    @property
    def is_superuser(self) -> bool:
        """Full superuser power: a superuser's unconfined credential holding every scope."""
        return self.user.is_superuser and ALL in self.scopes and self.prefix is None

    def covers(self, prefix: str | None) -> bool:
        """Whether everything under `prefix` (None: every key) lies inside this confinement."""
        return self.prefix is None or (prefix is not None and prefix.startswith(self.prefix))


def request_token(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def request_credential(request) -> Credential | None:
    """The request's credential, or None when it carries none."""
    user = request.user
    if user is None or not user.is_authenticated:
        return None
    token = request_token(request)
    if token is not None:
        scopes, prefix = tuple(token.scopes), token.prefix
        return Credential(user=user, auth=AUTH_TOKEN, scopes=scopes, prefix=prefix)
    auth = AUTH_JWT if isinstance(request.auth, Token) else AUTH_SESSION
    return Credential(user=user, auth=auth, scopes=user_default_scopes(user))


def acting_credential(request) -> Credential | None:
    """The credential whose limits apply to an admin action; None (no limits) with auth off."""
    return request_credential(request) if settings.KVS_AUTH_ENABLED else None


def credential_has_scope(request, scope: str) -> bool:
    """Whether the request's credential grants `scope`; JWTs and sessions carry their user's."""
    credential = request_credential(request)
    return credential is not None and credential.grants(scope)


@dataclass(frozen=True)
class Refusal:
    """Why a credential may not act at all, before any ACL is consulted: 401 or 403."""

    status: int  # 401: a credential is needed; 403: this one may not
    because: str
    source: str  # "credential", "scope" or "token_prefix"


def scope_refusal(
    credential: Credential | None, scope: str, *, anonymous_ok: bool = False
) -> Refusal | None:
    """Why `credential` (None: the request carries none) may not act with `scope`, or None."""
    if not settings.KVS_AUTH_ENABLED:
        return None
    if credential is None:
        if anonymous_ok:
            return None
        return Refusal(401, "No credential: this needs one.", "credential")
    if not credential.grants(scope):
        return Refusal(403, f"This credential lacks the '{scope}' scope.", "scope")
    return None


def key_anonymous_ok(scope: str) -> bool:
    """Whether anonymous callers may act with `scope` on keys (KVS_ALLOW_ANONYMOUS_*)."""
    return (scope == READ and settings.KVS_ALLOW_ANONYMOUS_READ) or (
        scope == WRITE and settings.KVS_ALLOW_ANONYMOUS_WRITE
    )


def key_scope_refusal(credential: Credential | None, scope: str, key: str | None) -> Refusal | None:
    """Scope refusal for the key API: the anonymous settings, then token prefix confinement."""
    refusal = scope_refusal(credential, scope, anonymous_ok=key_anonymous_ok(scope))
    if refusal is not None:
        return refusal
    prefix = credential.prefix if credential is not None else None
    if prefix and key is not None and not key.startswith(prefix):
        return Refusal(403, f"This token is confined to keys under '{prefix}'.", "token_prefix")
    return None


def refusal_raise(refusal: Refusal | None) -> None:
    if refusal is None:
        return
    if refusal.status == 401:
        raise NotAuthenticated()
    raise PermissionDenied(refusal.because)


def scope_check(request, scope: str, *, anonymous_ok: bool = False) -> None:
    """Raise 401 without a needed credential, 403 when the credential lacks `scope`."""
    if not settings.KVS_AUTH_ENABLED:
        return
    refusal_raise(scope_refusal(request_credential(request), scope, anonymous_ok=anonymous_ok))


def key_scope_check(request, scope: str, key: str | None = None) -> None:
    """Scope check for the key API, with the anonymous settings and token prefix confinement."""
    refusal_raise(key_scope_refusal(request_credential(request), scope, key))


class IsAuthenticatedOrAuthOff(BasePermission):
    """Any valid credential, or none at all when KVS_AUTH_ENABLED is off."""

    def has_permission(self, request, view):
        return not settings.KVS_AUTH_ENABLED or bool(request.user and request.user.is_authenticated)
