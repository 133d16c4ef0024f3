"""Who may call what: authentication settings, token scopes and token prefixes."""

from django.conf import settings
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission

from .models import ApiToken
from .scopes import DELETE, READ, WRITE, scopes_grant


def request_token(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def credential_has_scope(request, scope: str) -> bool:
    """Whether the request's credential grants `scope`; sessions carry their user's rights."""
    token = request_token(request)
    if token is not None:
        return scopes_grant(token.scopes, scope)
    return bool(request.user and request.user.is_authenticated and request.user.is_superuser)


def scope_check(request, scope: str, *, anonymous_ok: bool = False) -> None:
    """Raise 401 without a needed credential, 403 when the credential lacks `scope`."""
    if not settings.KVS_AUTH_ENABLED:
        return
    if not request.user or not request.user.is_authenticated:
        if anonymous_ok:
            return
        raise NotAuthenticated()
    if not credential_has_scope(request, scope):
        raise PermissionDenied(f"This credential lacks the '{scope}' scope.")


def key_scope_check(request, scope: str, key: str | None = None) -> None:
    """Scope check for the key API, with the anonymous settings and token prefix confinement."""
    anonymous_ok = (scope == READ and settings.KVS_ALLOW_ANONYMOUS_READ) or (
        scope == WRITE and settings.KVS_ALLOW_ANONYMOUS_WRITE
    )
    scope_check(request, scope, anonymous_ok=anonymous_ok and scope != DELETE)
    token = request_token(request)
    if token is not None and token.prefix and key is not None and not key.startswith(token.prefix):
        raise PermissionDenied(f"This token is confined to keys under '{token.prefix}'.")


class IsAuthenticatedOrAuthOff(BasePermission):
    """Any valid credential, or none at all when KVS_AUTH_ENABLED is off."""

    def has_permission(self, request, view):
        return not settings.KVS_AUTH_ENABLED or bool(request.user and request.user.is_authenticated)
