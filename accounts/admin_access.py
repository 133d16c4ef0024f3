"""What a staff user may do in the admin: what their own login could do through the API.

A session carries its user's default scopes, as a JWT does (every scope for superusers; read,
write, delete and pubsub for other staff), and each admin page asks for the scope its API asks
for. A Django model permission granted to the user explicitly also allows its action.
"""

from django.conf import settings

from .permissions import AUTH_SESSION, Credential, user_default_scopes

ACTIONS = ("view", "add", "change", "delete")


def admin_credential(request) -> Credential | None:
    """The admin user's session as the accounts rules see it (None: auth off, no limits).

    Like a browser session on the API: superusers hold every scope, other staff only their
    default scopes, so no one issues a token worth more than they are.
    """
    if not settings.KVS_AUTH_ENABLED:
        return None
    user = request.user
    return Credential(user=user, auth=AUTH_SESSION, scopes=user_default_scopes(user))


def admin_grants(request, scope: str) -> bool:
    """Whether the admin user's session holds `scope` (with auth off: every scope)."""
    credential = admin_credential(request)
    return credential is None or credential.grants(scope)


class ScopedAdmin:
    """A ModelAdmin mixin: each of Django's actions (view, add, change, delete) is allowed by the
    API scope named for it in `action_scopes`, or by Django's model permission."""

    action_scopes: dict[str, str] = {}

    def scope_allows(self, request, action: str) -> bool:
        scope = self.action_scopes.get(action)
        return scope is not None and admin_grants(request, scope)

    def has_module_permission(self, request):
        allowed = any(self.scope_allows(request, action) for action in ACTIONS)
        return allowed or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        allowed = self.scope_allows(request, "view") or self.scope_allows(request, "change")
        return allowed or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return self.scope_allows(request, "add") or super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        allowed = self.scope_allows(request, "change")
        return allowed or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        allowed = self.scope_allows(request, "delete")
        return allowed or super().has_delete_permission(request, obj)
