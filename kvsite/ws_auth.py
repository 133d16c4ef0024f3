"""Websocket credentials: the same bearer tokens, JWTs and session cookie as the REST API.

`CredentialMiddleware` puts `user` and `auth` in the connection's scope, as DRF puts them on a
request (`auth` is the ApiToken or the AccessToken; None for a session or no credential), so that
consumers check scopes, token prefixes and ACLs with the REST API's own helpers through
`ws_request(scope)`. A bearer value (`?token=` or `Authorization: Bearer`) wins over the session
cookie; an invalid one leaves `auth_error` set and the consumer refuses the socket (401).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from urllib.parse import parse_qs, urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import bearer_authenticate

TOKEN_PARAM = "token"


@dataclass(frozen=True)
class WsRequest:
    """The parts of a DRF request that the permission helpers read: `user` and `auth`."""

    user: object
    auth: object | None


def ws_request(scope: dict) -> WsRequest:
    """The socket's credential in the shape `request_caller` and `key_scope_check` expect."""
    return WsRequest(user=scope.get("user") or AnonymousUser(), auth=scope.get("auth"))


def query_params(scope: dict) -> dict[str, str]:
    """The socket URL's query parameters (the last value of each)."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {name: values[-1] for name, values in parse_qs(raw, keep_blank_values=True).items()}


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def bearer_from_scope(scope: dict) -> str | None:
    """The bearer value given as `?token=` or in an `Authorization: Bearer` header, if any."""
    token = query_params(scope).get(TOKEN_PARAM)
    if token:
        return token
    header = _header(scope, b"authorization")
    if header is None:
        return None
    keyword, _, value = header.strip().partition(" ")
    return value.strip() if keyword.lower() == "bearer" else None


def origin_trusted(scope: dict) -> bool:
    """Whether a cookie may authenticate this handshake: no Origin (not a browser), the page's own
    host, or a CSRF-trusted origin. Browsers send cookies with cross-site websocket handshakes,
    so without this check any web page could open a watch in its visitor's name."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    return urlsplit(origin).netloc.lower() == (_header(scope, b"host") or "").lower()


class CredentialMiddleware(BaseMiddleware):
    """Set scope `user`, `auth` and, for a refused bearer value, `auth_error`."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        user, auth, error = AnonymousUser(), None, None
        raw = bearer_from_scope(scope)
        session_key = scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME)
        if raw is not None:
            try:
                user, auth = await database_sync_to_async(bearer_authenticate)(raw)
            except AuthenticationFailed as failure:
                error = str(failure.detail)
        elif session_key and origin_trusted(scope):
            scope["session"] = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
            user = await get_user(scope)
        scope.update(user=user, auth=auth, auth_error=error)
        return await super().__call__(scope, receive, send)


def CredentialMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    """Cookies, then the credential. Not Channels' SessionMiddleware: it wraps every frame the
    socket sends (to save a session that a websocket never changes), which costs more than the
    frame itself under fan-out; the session is read once, here, when a cookie authenticates."""
    return CookieMiddleware(CredentialMiddleware(inner))
