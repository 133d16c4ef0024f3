"""Account writes: the first-boot root user and API tokens."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ApiToken, User
from .scopes import ALL
from .tokens import token_hash, token_id_new, token_secret_new

ROOT_USERNAME = "root"


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def token_create(
    *,
    user: User,
    scopes: list[str],
    name: str = "",
    prefix: str | None = None,
    expires_in: int | None = None,
    secret: str | None = None,
) -> IssuedToken:
    """Issue a token for `user`; the secret is returned here and nowhere else."""
    secret = secret or token_secret_new()
    token = ApiToken.objects.create(
        id=token_id_new(),
        user=user,
        name=name,
        secret_hash=token_hash(secret),
        scopes=list(scopes),
        prefix=prefix or None,
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
    )
    return IssuedToken(token=token, secret=secret)


@dataclass(frozen=True)
class RootBootstrap:
    created: bool
    token: str | None = None
    password: str | None = None


@transaction.atomic
def root_bootstrap() -> RootBootstrap:
    """On an empty node, create the `root` superuser and its all-scopes token (once).

    The token is KVS_BOOTSTRAP_TOKEN when set, else a fresh secret; with KVS_BOOTSTRAP_TOKEN set a
    later boot makes sure that token exists, so the configured string always works.
    """
    configured = settings.KVS_BOOTSTRAP_TOKEN
    if User.objects.exists():
        root = User.objects.filter(username=ROOT_USERNAME).first()
        if (
            configured
            and root
            and not ApiToken.objects.filter(secret_hash=token_hash(configured)).exists()
        ):
            token_create(user=root, scopes=[ALL], name="bootstrap", secret=configured)
        return RootBootstrap(created=False, token=configured or None)
    password = secrets.token_urlsafe(12)
    root = User.objects.create_superuser(username=ROOT_USERNAME, password=password)
    issued = token_create(user=root, scopes=[ALL], name="bootstrap", secret=configured or None)
    return RootBootstrap(created=True, token=issued.secret, password=password)
