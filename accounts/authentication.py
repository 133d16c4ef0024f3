"""Bearer-token authentication for DRF, with a short per-process cache of verified tokens."""

import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .models import ApiToken, User
from .tokens import token_hash

# secret hash -> (monotonic deadline, token). Only active tokens are cached; a revocation made in
# this process drops its entry at once, one made elsewhere is seen within KVS_TOKEN_CACHE_SECONDS.
_verified: dict[str, tuple[float, ApiToken]] = {}
_CACHE_MAX = 10_000


def token_authenticate(secret: str) -> ApiToken:
    """The active token with this secret (user loaded); raise AuthenticationFailed otherwise."""
    digest = token_hash(secret)
    cached = _verified.get(digest)
    now = time.monotonic()
    if cached is not None and cached[0] > now and cached[1].is_active():
        return cached[1]
    token = ApiToken.objects.select_related("user").filter(secret_hash=digest).first()
    if token is None:
        raise AuthenticationFailed("Invalid token.")
    if token.revoked_at is not None:
        raise AuthenticationFailed("Token revoked.")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise AuthenticationFailed("Token expired.")
    if not token.user.is_active:
        raise AuthenticationFailed("User inactive.")
    ttl = settings.KVS_TOKEN_CACHE_SECONDS
    if ttl > 0:
        if len(_verified) >= _CACHE_MAX:
            _verified.clear()
        _verified[digest] = (now + ttl, token)
    return token


def token_cache_clear() -> None:
    """Forget every cached verification in this process."""
    _verified.clear()


@receiver(post_save, sender=ApiToken)
@receiver(post_delete, sender=ApiToken)
def _token_changed(sender, instance: ApiToken, **kwargs) -> None:
    _verified.pop(instance.secret_hash, None)


@receiver(post_save, sender=User)
@receiver(post_delete, sender=User)
def _user_changed(sender, instance: User, **kwargs) -> None:
    for digest in [d for d, (_, t) in _verified.items() if t.user_id == instance.pk]:
        _verified.pop(digest, None)


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`: request.user is the owner, request.auth the token."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Malformed token.") from None
        token = token_authenticate(secret)
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="kvsite"'
