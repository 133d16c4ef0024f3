"""Websocket credentials: the same bearer tokens, JWTs and session cookie as the REST API.

`CredentialMiddleware` puts `user` and `auth` in the connection's scope, as DRF puts them on a
request (`auth` is the ApiToken or the AccessToken; None for a session or no credential), so that
consumers check scopes, token prefixes and ACLs with the REST API's own helpers through
`ws_request(scope)`. A bearer value (`?token=` or `Authorization: Bearer`) wins over the session
cookie; an invalid one leaves `auth_error` set and the consumer refuses the socket (401).

An open socket's credential is checked again while it stays open (`kvsite.ws_recheck`):
`credential_key` names it, `credentials_verify` says how each of many stands now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib import auth as django_auth
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import Token

from accounts.authentication import (
    bearer_authenticate,
    bearer_refused,
    jwts_verify,
    tokens_verify,
)
from accounts.models import ApiToken
from kv.callers import users_groups_load

TOKEN_PARAM = "token"
TOKEN, JWT, SESSION = "token", "jwt", "session"
# A socket's credential: (TOKEN, the secret's hash), (JWT, the token itself) or (SESSION, its key).
CredentialKey = tuple[str, str]


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
                address = (scope.get("client") or [None])[0]
                await database_sync_to_async(bearer_refused)(raw, failure, address=address)
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


# --- Checking open sockets' credentials again ---------------------------------------------------


def credential_key(scope: dict) -> CredentialKey | None:
    """The credential a socket was opened with; None if there is nothing to check again (no
    credential, or KVS_AUTH_ENABLED off)."""
    if not settings.KVS_AUTH_ENABLED:
        return None
    auth = scope.get("auth")
    if isinstance(auth, ApiToken):
        return TOKEN, auth.secret_hash
    if isinstance(auth, Token):
        raw = auth.token
        return JWT, raw.decode() if isinstance(raw, bytes) else str(raw)
    user, session = scope.get("user"), scope.get("session")
    if session is not None and user is not None and user.is_authenticated:
        return SESSION, session.session_key
    return None


def credentials_verify(
    keys: Iterable[CredentialKey],
) -> dict[CredentialKey, WsRequest | AuthenticationFailed]:
    """Each credential as it stands now: the request-shaped credential, its user read again with
    their group names, or the refusal. Tokens, JWTs' users and group names are read a batch at a
    time; sessions one by one."""
    keys = list(dict.fromkeys(keys))
    verdicts: dict[CredentialKey, WsRequest | AuthenticationFailed] = {}
    for digest, token in tokens_verify(v for kind, v in keys if kind == TOKEN).items():
        verdicts[TOKEN, digest] = (
            token if isinstance(token, Exception) else WsRequest(user=token.user, auth=token)
        )
    for raw, verdict in jwts_verify(v for kind, v in keys if kind == JWT).items():
        verdicts[JWT, raw] = verdict if isinstance(verdict, Exception) else WsRequest(*verdict)
    for kind, value in keys:
        if kind == SESSION:
            verdicts[SESSION, value] = session_verify(value)
    users_groups_load(v.user for v in verdicts.values() if isinstance(v, WsRequest))
    return verdicts


def session_verify(session_key: str) -> WsRequest | AuthenticationFailed:
    """A session's user as it stands now, checked as Django checks a request's session; a
    session logged out or expired, or whose user is inactive, gone or has a new password, is
    refused."""
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = django_auth.get_user(SimpleNamespace(session=session))
    if not user.is_authenticated:
        return AuthenticationFailed("The session has ended.")
    return WsRequest(user=user, auth=None)
