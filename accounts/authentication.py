"""Bearer-token authentication for DRF."""

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .models import ApiToken
from .tokens import token_hash


def token_authenticate(secret: str) -> ApiToken:
    """The active token with this secret (user loaded); raise AuthenticationFailed otherwise."""
    token = ApiToken.objects.select_related("user").filter(secret_hash=token_hash(secret)).first()
    if token is None:
        raise AuthenticationFailed("Invalid token.")
    if token.revoked_at is not None:
        raise AuthenticationFailed("Token revoked.")
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise AuthenticationFailed("Token expired.")
    if not token.user.is_active:
        raise AuthenticationFailed("User inactive.")
    return token


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
