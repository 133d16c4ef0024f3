"""Who is asking, for the audit trail: the request being served, set by a middleware, so that
services record the remote address and credential without taking them as arguments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from rest_framework_simplejwt.tokens import Token

from accounts.models import ApiToken

_request: ContextVar[object | None] = ContextVar("kvs_audit_request", default=None)


@dataclass(frozen=True)
class Origin:
    """Where an action came from: who, with which credential, from which address."""

    actor: str | None = None
    credential: str | None = None
    remote: str | None = None


def credential_id(auth: object, user: object = None) -> str | None:
    """A credential's public name: a token id, `jwt:<jti>`, or `session` (never a secret)."""
    if isinstance(auth, ApiToken):
        return auth.id
    if isinstance(auth, Token):
        jti = auth.get("jti")
        return f"jwt:{jti}" if isinstance(jti, str) else "jwt"
    if user is not None and getattr(user, "is_authenticated", False):
        return "session"
    return None


def request_origin(request) -> Origin:
    """The origin of an HTTP request (its user and auth as DRF or the session left them)."""
    user = getattr(request, "user", None)
    authenticated = user is not None and user.is_authenticated
    return Origin(
        actor=user.username if authenticated else None,
        credential=credential_id(getattr(request, "auth", None), user),
        remote=request.META.get("REMOTE_ADDR") or None,
    )


def current_origin() -> Origin:
    """The origin of the request this thread serves; an empty one outside requests."""
    request = _request.get()
    return request_origin(request) if request is not None else Origin()


@contextmanager
def serving(request) -> Iterator[None]:
    """Make `request` the current one for the block."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


class AuditContextMiddleware:
    """Make each request the current one while it is served (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with serving(request):
            return self.get_response(request)
