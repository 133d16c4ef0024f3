"""Bearer authentication for DRF: API tokens (with a short per-process cache) and JWTs."""

import re
import time
from collections.abc import Iterable
from typing import TypeVar

from django.conf import settings
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken, Token

from .models import ApiToken, User
from .tokens import token_hash

T = TypeVar("T", bound=Token)

# secret hash -> (monotonic deadline, token). Only active tokens are cached; a revocation made in
# this process drops its entry at once, one made elsewhere is seen within KVS_TOKEN_CACHE_SECONDS.
_verified: dict[str, tuple[float, ApiToken]] = {}
_CACHE_MAX = 10_000
VERIFY_BATCH = 500  # tokens or users read per query when many are verified at once

# Three dot-separated base64url parts. API token secrets never contain a dot.
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# JWT claim holding jwt_password_stamp(user) at issue time.
PASSWORD_CLAIM = "pwd"


def _token_refusal(token: ApiToken | None) -> AuthenticationFailed | None:
    """Why a looked-up token (user loaded) does not authenticate; None if it does."""
    if token is None:
        return AuthenticationFailed("Invalid token.")
    if token.revoked_at is not None:
        return AuthenticationFailed("Token revoked.")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return AuthenticationFailed("Token expired.")
    if not token.user.is_active:
        return AuthenticationFailed("User inactive.")
    return None


def _token_remember(digest: str, token: ApiToken, now: float) -> None:
    ttl = settings.KVS_TOKEN_CACHE_SECONDS
    if ttl > 0:
        if len(_verified) >= _CACHE_MAX:
            _verified.clear()
        _verified[digest] = (now + ttl, token)


def token_authenticate(secret: str) -> ApiToken:
    """The active token with this secret (user loaded); raise AuthenticationFailed otherwise."""
    digest = token_hash(secret)
    cached = _verified.get(digest)
    now = time.monotonic()
    if cached is not None and cached[0] > now and cached[1].is_active():
        return cached[1]
    token = ApiToken.objects.select_related("user").filter(secret_hash=digest).first()
    refusal = _token_refusal(token)
    if refusal is not None:
        raise refusal
    _token_remember(digest, token, now)
    return token


def tokens_verify(digests: Iterable[str]) -> dict[str, ApiToken | AuthenticationFailed]:
    """Each token (by secret hash) as it stands now: the active token, its user loaded, or the
    refusal. Read from the database in one query per VERIFY_BATCH tokens, cached or not (open
    websockets re-check with this); the active ones are cached again for requests."""
    digests = list(dict.fromkeys(digests))
    now = time.monotonic()
    found: dict[str, ApiToken] = {}
    for start in range(0, len(digests), VERIFY_BATCH):
        batch = digests[start : start + VERIFY_BATCH]
        rows = ApiToken.objects.select_related("user").filter(secret_hash__in=batch)
        found.update((token.secret_hash, token) for token in rows)
    verdicts: dict[str, ApiToken | AuthenticationFailed] = {}
    for digest in digests:
        token = found.get(digest)
        refusal = _token_refusal(token)
        if refusal is None:
            _token_remember(digest, token, now)
        else:
            _verified.pop(digest, None)
        verdicts[digest] = token if refusal is None else refusal
    return verdicts


def jwt_password_stamp(user: User) -> str:
    """A keyed digest of the user's password hash; a password change voids their JWTs."""
    key = settings.SIMPLE_JWT["SIGNING_KEY"]
    return salted_hmac("kvsite.jwt.password", user.password, secret=key).hexdigest()[:20]


def jwt_user(token: Token, *, users: dict[str, User] | None = None) -> User:
    """The active user a verified JWT names, if their password is unchanged since it was issued
    (looked up in `users`, by username, when given)."""
    username = token.get(jwt_settings.USER_ID_CLAIM)
    if not isinstance(username, str):
        user = None
    elif users is not None:
        user = users.get(username)
    else:
        user = User.objects.filter(username=username).first()
    if user is None or not user.is_active:
        raise AuthenticationFailed("The JWT's user is unknown or inactive.")
    if not constant_time_compare(str(token.get(PASSWORD_CLAIM, "")), jwt_password_stamp(user)):
        raise AuthenticationFailed("The password has changed since this JWT was issued.")
    return user


def jwt_verify(token_class: type[T], raw: str, *, what: str = "JWT") -> T:
    """`raw` verified as a `token_class` JWT; raise AuthenticationFailed otherwise.

    A JWT signed with the right key may still carry claims the libraries cannot take: an `exp`,
    `iat` or `nbf` of 1e30 or Infinity is past any date (OverflowError, ValueError)."""
    try:
        return token_class(raw)
    except TokenError as exc:
        raise AuthenticationFailed(f"Invalid {what}: {exc}.") from None
    except (ArithmeticError, ValueError, TypeError, OSError):
        raise AuthenticationFailed(f"Invalid {what}: a time claim is out of range.") from None


def jwt_authenticate(raw: str) -> tuple[User, AccessToken]:
    """The user and verified access token of a JWT; raise AuthenticationFailed otherwise."""
    access = _jwt_access(raw)
    return jwt_user(access), access


def _jwt_access(raw: str) -> AccessToken:
    return jwt_verify(AccessToken, raw)


def jwts_verify(raws: Iterable[str]) -> dict[str, tuple[User, AccessToken] | AuthenticationFailed]:
    """Each access JWT as it stands now (signature, expiry, its user active with an unchanged
    password): its user and token, or the refusal. Their users are read in one query per
    VERIFY_BATCH."""
    verdicts: dict[str, tuple[User, AccessToken] | AuthenticationFailed] = {}
    tokens: dict[str, AccessToken] = {}
    for raw in dict.fromkeys(raws):
        try:
            tokens[raw] = _jwt_access(raw)
        except AuthenticationFailed as refusal:
            verdicts[raw] = refusal
    names = {access.get(jwt_settings.USER_ID_CLAIM) for access in tokens.values()}
    names = sorted(name for name in names if isinstance(name, str))
    users: dict[str, User] = {}
    for start in range(0, len(names), VERIFY_BATCH):
        rows = User.objects.filter(username__in=names[start : start + VERIFY_BATCH])
        users.update((user.username, user) for user in rows)
    for raw, access in tokens.items():
        try:
            verdicts[raw] = (jwt_user(access, users=users), access)
        except AuthenticationFailed as refusal:
            verdicts[raw] = refusal
    return verdicts


def bearer_authenticate(raw: str) -> tuple[User, ApiToken | AccessToken]:
    """Who a bearer value (JWT or API token secret) stands for; raise AuthenticationFailed."""
    if _JWT_SHAPE.match(raw):
        return jwt_authenticate(raw)
    token = token_authenticate(raw)
    return token.user, token


def bearer_refusal_detail(raw: str) -> dict:
    """What an audit event may say of a refused bearer value: its kind and, for a known token,
    its id (never the secret, nor anything that finds it)."""
    if _JWT_SHAPE.match(raw):
        return {"kind": "jwt"}
    token_id = (
        ApiToken.objects.filter(secret_hash=token_hash(raw)).values_list("id", flat=True).first()
    )
    return {"kind": "token", "token": token_id} if token_id else {"kind": "token"}


def bearer_refused(raw: str, failure: AuthenticationFailed, *, address: str | None = None) -> None:
    """Record the refusal of a bearer value in the audit trail."""
    from .services import credential_refused

    credential_refused(reason=str(failure.detail), address=address, **bearer_refusal_detail(raw))


def token_cache_clear() -> None:
    """Forget every cached verification in this process."""
    _verified.clear()


def _users_forget(user_ids) -> None:
    for digest in [d for d, (_, t) in _verified.items() if t.user_id in user_ids]:
        _verified.pop(digest, None)


@receiver(post_save, sender=ApiToken)
@receiver(post_delete, sender=ApiToken)
def _token_changed(sender, instance: ApiToken, **kwargs) -> None:
    _verified.pop(instance.secret_hash, None)


@receiver(post_save, sender=User)
@receiver(post_delete, sender=User)
def _user_changed(sender, instance: User, **kwargs) -> None:
    _users_forget({instance.pk})


@receiver(m2m_changed, sender=User.groups.through)
def _membership_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    # Cached tokens carry their user, and with it the group names the ACL checks.
    if not action.startswith("post_"):
        return
    if not reverse:
        _users_forget({instance.pk})
    elif pk_set is not None:
        _users_forget(pk_set)
    else:  # a group's members were cleared: we do not know whom
        _verified.clear()


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token or JWT>`: request.user is the owner, request.auth the token."""

    keyword = "Bearer"

    def authenticate(self, request):
        # From META, as DRF's get_authorization_header does but without request.headers, which
        # copies every header of the request first (≈ 8 µs a request).
        header = request.META.get("HTTP_AUTHORIZATION", b"")
        if isinstance(header, str):
            header = header.encode(HTTP_HEADER_ENCODING)
        header = header.split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Malformed token.") from None
        try:
            return bearer_authenticate(raw)
        except AuthenticationFailed as failure:
            bearer_refused(raw, failure)
            raise

    def authenticate_header(self, request):
        return f'{self.keyword} realm="kvsite"'
