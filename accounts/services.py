"""Account writes: users, groups, API tokens, JWT logins and the first-boot root user.

Functions that take `credential` check it against the accounts rules (who may create superusers,
grant scopes, ...); None means an internal caller, or auth switched off, and checks nothing.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken

from audit.services import event_record
from kv.keys import prefix_validate
from kvsite.exceptions import Conflict, Forbidden, InvalidInput
from kvsite.throttling import LoginAttempt, LoginThrottle

from .authentication import PASSWORD_CLAIM, jwt_password_stamp, jwt_user, jwt_verify
from .models import ApiToken, User
from .permissions import Credential
from .scopes import ALL, scopes_unknown
from .selectors import groups_named, token_get, users_named
from .tokens import token_hash, token_id_new, token_secret_new

ROOT_USERNAME = "root"
log = logging.getLogger(__name__)


# --- users ---------------------------------------------------------------------------------------


def _superuser_required(credential: Credential | None, action: str) -> None:
    if credential is not None and not credential.is_superuser:
        raise Forbidden(f"Only a superuser's unconfined '*' credential may {action}.")


def _last_superuser_guard(user: User) -> None:
    """Raise Conflict if `user` is the only active superuser (locked against a concurrent twin)."""
    active = User.objects.select_for_update().filter(is_superuser=True, is_active=True)
    if list(active.order_by("pk").values_list("pk", flat=True)) == [user.pk]:
        raise Conflict(f"{user.username!r} is the last active superuser.")


def _staff_check(*, is_superuser: bool, is_staff: bool | None) -> bool:
    """The user's staff flag: as given, else as `is_superuser`; a superuser is always staff."""
    if is_staff is None:
        return is_superuser
    if is_superuser and not is_staff:
        raise InvalidInput("A superuser is always staff: give is_staff true, or leave it out.")
    return is_staff


def _password_set(user: User, password: str) -> None:
    """Set `password` on the unsaved `user` once Django's password validators accept it."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), errors={"password": exc.messages}) from None
    user.set_password(password)


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str | None = None,
    email: str = "",
    groups: list[str] | None = None,
    is_superuser: bool = False,
    is_staff: bool | None = None,
    credential: Credential | None = None,
) -> User:
    """Create a user; without a password they can use API tokens but not log in.

    Staff may log in to the admin (with no more rights there than their login has on the API);
    superusers always are staff, and `is_staff` left out follows `is_superuser`.
    """
    if is_superuser:
        _superuser_required(credential, "create a superuser")
    is_staff = _staff_check(is_superuser=is_superuser, is_staff=is_staff)
    username = User.normalize_username(username)
    if User.objects.filter(username=username).exists():
        raise Conflict(f"A user named {username!r} already exists.")
    member_of = groups_named(names=groups or [])
    user = User(username=username, email=email, is_superuser=is_superuser, is_staff=is_staff)
    if password is None:
        user.set_unusable_password()
    else:
        _password_set(user, password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise Conflict(f"A user named {username!r} already exists.") from None
    user.groups.set(member_of)
    return user


@transaction.atomic
def user_update(
    *,
    user: User,
    email: str | None = None,
    password: str | None = None,
    groups: list[str] | None = None,
    is_active: bool | None = None,
    is_superuser: bool | None = None,
    is_staff: bool | None = None,
    credential: Credential | None = None,
) -> User:
    """Change the given fields of `user` (None: unchanged); `groups` replaces the membership.

    A change of `is_superuser` carries `is_staff` along unless `is_staff` is given too.
    """
    if user.is_superuser or is_superuser:
        _superuser_required(credential, "change a superuser or make one")
    superuser = user.is_superuser if is_superuser is None else is_superuser
    if is_staff is None and is_superuser is not None:
        is_staff = is_superuser
    if is_staff is not None:
        is_staff = _staff_check(is_superuser=superuser, is_staff=is_staff)
    if user.is_superuser and user.is_active and (is_active is False or is_superuser is False):
        _last_superuser_guard(user)
    member_of = groups_named(names=groups) if groups is not None else None
    changed = []
    if email is not None:
        user.email = email
        changed.append("email")
    if password is not None:
        _password_set(user, password)
        changed.append("password")
    if is_active is not None:
        user.is_active = is_active
        changed.append("is_active")
    if is_superuser is not None:
        user.is_superuser = is_superuser
        changed.append("is_superuser")
    if is_staff is not None:
        user.is_staff = is_staff
        changed.append("is_staff")
    if changed:
        user.save(update_fields=changed)
    if member_of is not None:
        user.groups.set(member_of)
    return user


@transaction.atomic
def user_delete(*, user: User, credential: Credential | None = None) -> None:
    """Delete `user` and, with them, their API tokens."""
    if user.is_superuser:
        _superuser_required(credential, "delete a superuser")
        if user.is_active:
            _last_superuser_guard(user)
    user.delete()


# --- groups --------------------------------------------------------------------------------------


@transaction.atomic
def group_create(*, name: str, members: list[str] | None = None) -> Group:
    """Create a group with these members."""
    if Group.objects.filter(name=name).exists():
        raise Conflict(f"A group named {name!r} already exists.")
    users = users_named(usernames=members or [])
    try:
        with transaction.atomic():
            group = Group.objects.create(name=name)
    except IntegrityError:
        raise Conflict(f"A group named {name!r} already exists.") from None
    group.user_set.set(users)
    return group


@transaction.atomic
def group_update(
    *,
    group: Group,
    members: list[str] | None = None,
    add: list[str] | None = None,
    remove: list[str] | None = None,
) -> Group:
    """Replace the members of `group` with `members`, or add and remove some."""
    if members is not None and (add or remove):
        raise InvalidInput("Give either members, or add and/or remove.")
    add, remove = add or [], remove or []
    both = sorted(set(add) & set(remove))
    if both:
        raise InvalidInput(f"Both added and removed: {', '.join(both)}.")
    if members is not None:
        group.user_set.set(users_named(usernames=members))
        return group
    adding, removing = users_named(usernames=add), users_named(usernames=remove)
    group.user_set.add(*adding)
    group.user_set.remove(*removing)
    return group


@transaction.atomic
def group_delete(*, group: Group) -> None:
    """Delete `group`; its members stay."""
    group.delete()


# --- API tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def _grant_check(credential: Credential, *, user: User, scopes: list[str], prefix: str | None):
    """Refuse (403) a token that would be worth more than the credential issuing it."""
    beyond = [scope for scope in scopes if not credential.grants(scope)]
    if beyond:
        raise Forbidden(f"This credential cannot grant scopes it lacks: {', '.join(beyond)}.")
    if not credential.covers(prefix):
        raise Forbidden(f"This credential is confined to {credential.prefix!r}; so are its grants.")
    if user.is_superuser and user.pk != credential.user.pk and not credential.is_superuser:
        raise Forbidden("Only a superuser's unconfined '*' credential may issue superuser tokens.")


@transaction.atomic
def token_create(
    *,
    user: User,
    scopes: list[str],
    name: str = "",
    prefix: str | None = None,
    expires_in: int | None = None,
    secret: str | None = None,
    credential: Credential | None = None,
) -> IssuedToken:
    """Issue a token for `user`; the secret is returned here and nowhere else.

    An issuing `credential` may grant only scopes it holds, only within its own prefix, and
    tokens of another superuser only if it is a superuser's: no one mints more than they have.
    """
    scopes = list(dict.fromkeys(scopes))
    if not scopes:
        raise InvalidInput("Give at least one scope.")
    unknown = scopes_unknown(scopes)
    if unknown:
        raise InvalidInput(f"Unknown scopes: {', '.join(unknown)}.", unknown=unknown)
    prefix = prefix_validate(prefix) if prefix else None  # '' is no confinement
    if expires_in is not None and expires_in <= 0:
        raise InvalidInput("expires_in must be a positive number of seconds.")
    if credential is not None:
        _grant_check(credential, user=user, scopes=scopes, prefix=prefix)
    secret = secret or token_secret_new()
    token = ApiToken.objects.create(
        id=token_id_new(),
        user=user,
        name=name,
        secret_hash=token_hash(secret),
        scopes=scopes,
        prefix=prefix,
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, token_id: str) -> ApiToken:
    """Mark the token revoked (again is a no-op); it fails authentication from now on."""
    token = token_get(token_id=token_id)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])  # post_save drops it from the verified cache
    return token


# --- JWT login -----------------------------------------------------------------------------------


def jwt_issue(*, user: User) -> dict[str, str]:
    """A fresh `{"access", "refresh"}` JWT pair for `user`, void once their password changes."""
    refresh = RefreshToken.for_user(user)
    refresh[PASSWORD_CLAIM] = jwt_password_stamp(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def login_refused(*, username: str | None, address: str | None, reason: str) -> None:
    """Note a refused or throttled login or refresh: a WARNING, and an audit event."""
    log.warning("login refused: user=%r address=%s reason=%s", username, address, reason)
    detail = {"username": username, "reason": reason}
    event_record("login.failed", target=username or "", detail=detail, actor=None, credential=None)


def credential_refused(*, reason: str, kind: str, address: str | None = None, **detail) -> None:
    """Note a refused credential (invalid, expired, revoked): an audit event, never its secret."""
    detail = {"kind": kind, "reason": reason, **detail}
    origin = {"remote": address} if address is not None else {}
    event_record(
        "credential.refused", target=detail.get("token", ""), detail=detail, actor=None,
        credential=None, **origin,
    )  # fmt: skip


def _login_attempt(request, *, username: str | None, what: str) -> LoginAttempt | None:
    """Count an attempt from `request`'s client; raise Throttled past the limits.

    Without a request (an internal caller) nothing is counted.
    """
    if request is None:
        return None
    throttle = LoginThrottle()
    try:
        return throttle.attempt(request, username=username)
    except Throttled:
        login_refused(
            username=username, address=throttle.address(request), reason=f"{what} throttled"
        )
        raise


def password_authenticate(*, username: str, password: str, request=None) -> User:
    """The active user whose username and password these are; raise AuthenticationFailed.

    Throttled (429) before the password is checked when too many attempts failed lately for
    this username or from this client; unknown usernames cost and count the same as known ones.
    """
    attempt = _login_attempt(request, username=username, what="login")
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        address = attempt.address if attempt else None
        login_refused(username=username, address=address, reason="wrong username or password")
        raise AuthenticationFailed("Invalid username or password.")
    if attempt:
        attempt.succeeded()
    return user


def login_succeeded(*, user: User, via: str) -> None:
    """Note a password login that let `user` in (`via`: api or admin) in the audit trail."""
    detail = {"via": via}
    event_record("login", target=user.username, detail=detail, actor=user.username, credential=None)


def jwt_login(*, username: str, password: str, request=None) -> dict[str, str]:
    """The JWT pair of an active user who gave the right password; 401 (or 429) otherwise."""
    user = password_authenticate(username=username, password=password, request=request)
    login_succeeded(user=user, via="api")
    update_last_login(None, user)
    return jwt_issue(user=user)


def jwt_refresh(*, refresh: str, request=None) -> dict[str, str]:
    """`{"access"}`: a new access JWT for a valid refresh JWT whose user may still log in.

    Failed refreshes count against the client address's login limit.
    """
    attempt = _login_attempt(request, username=None, what="refresh")
    username = None
    try:
        token = jwt_verify(RefreshToken, refresh, what="refresh JWT")
        username = token.get(jwt_settings.USER_ID_CLAIM)
        jwt_user(token)  # still there, active, same password
    except AuthenticationFailed as exc:
        address = attempt.address if attempt else None
        login_refused(username=username, address=address, reason=f"refresh: {exc.detail}")
        raise
    if attempt:
        attempt.succeeded()
    return {"access": str(token.access_token)}


# --- first boot ----------------------------------------------------------------------------------


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
