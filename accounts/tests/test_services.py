"""Account services: the rules they enforce, independent of HTTP."""

import hashlib

import pytest
from django.contrib.auth.models import Group
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import ApiToken, User
from accounts.permissions import AUTH_JWT, AUTH_TOKEN, Credential
from accounts.services import (
    group_create,
    group_update,
    jwt_issue,
    jwt_login,
    jwt_refresh,
    root_bootstrap,
    token_create,
    token_revoke,
    user_create,
    user_delete,
    user_update,
)
from kvsite.exceptions import Conflict, Forbidden, InvalidInput, NotFound

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def token_credential(user: User, scopes: list[str], prefix: str | None = None) -> Credential:
    return Credential(user=user, auth=AUTH_TOKEN, scopes=tuple(scopes), prefix=prefix)


# --- users ---------------------------------------------------------------------------------------


def test_user_create_without_password_has_an_unusable_one():
    user = user_create(username="robot")
    assert not user.has_usable_password()
    assert (user.is_superuser, user.is_staff, user.is_active) == (False, False, True)


def test_user_create_internal_callers_may_make_superusers():
    user = user_create(username="admin2", password=PASSWORD, is_superuser=True)
    assert user.is_superuser and user.is_staff and user.check_password(PASSWORD)


def test_user_create_refuses_a_superuser_for_a_plain_credential(alice):
    with pytest.raises(Forbidden):
        user_create(username="x", is_superuser=True, credential=token_credential(alice, ["*"]))
    assert not User.objects.filter(username="x").exists()


def test_user_create_duplicate_is_a_conflict(alice):
    with pytest.raises(Conflict):
        user_create(username="alice")


def test_user_update_none_leaves_fields_alone(bob):
    user_update(user=bob, is_active=False)
    bob.refresh_from_db()
    assert (bob.email, bob.is_active, bob.check_password(PASSWORD)) == (
        "bob@example.com",
        False,
        True,
    )


def test_user_update_superuser_flag_moves_staff_with_it(root_user, bob):
    user_update(user=bob, is_superuser=True)
    bob.refresh_from_db()
    assert bob.is_superuser and bob.is_staff
    user_update(user=bob, is_superuser=False)
    bob.refresh_from_db()
    assert not bob.is_superuser and not bob.is_staff


def test_user_update_is_all_or_nothing(bob):
    with pytest.raises(InvalidInput):
        user_update(user=bob, email="changed@example.com", groups=["ghosts"])
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"


def test_user_delete_refuses_the_last_active_superuser(root_user):
    with pytest.raises(Conflict):
        user_delete(user=root_user)
    with pytest.raises(Conflict):
        user_update(user=root_user, is_active=False)
    assert User.objects.filter(username="root", is_active=True, is_superuser=True).exists()


def test_superuser_accounts_need_a_full_superuser_credential(root_user):
    User.objects.create_superuser(username="admin2", password=PASSWORD)
    narrowed = token_credential(root_user, ["admin:users:update", "admin:users:delete"])
    confined = token_credential(root_user, ["*"], prefix="team/")
    for credential in (narrowed, confined):
        with pytest.raises(Forbidden):
            user_update(user=root_user, email="x@example.com", credential=credential)
        with pytest.raises(Forbidden):
            user_delete(user=User.objects.get(username="admin2"), credential=credential)
    full = Credential(user=root_user, auth=AUTH_JWT, scopes=("*",))
    user_delete(user=User.objects.get(username="admin2"), credential=full)
    assert not User.objects.filter(username="admin2").exists()


# --- groups --------------------------------------------------------------------------------------


def test_group_create_and_update(alice, bob):
    group = group_create(name="ops", members=["alice"])
    group_update(group=group, add=["bob"])
    assert set(group.user_set.values_list("username", flat=True)) == {"alice", "bob"}
    group_update(group=group, remove=["alice"])
    assert list(group.user_set.values_list("username", flat=True)) == ["bob"]
    group_update(group=group, members=[])
    assert not group.user_set.exists()


def test_group_create_duplicate_is_a_conflict():
    Group.objects.create(name="ops")
    with pytest.raises(Conflict):
        group_create(name="ops")


def test_group_update_with_an_unknown_member_changes_nothing(alice, bob):
    group = group_create(name="ops", members=["alice"])
    with pytest.raises(InvalidInput, match="ghost"):
        group_update(group=group, add=["bob", "ghost"])
    assert list(group.user_set.values_list("username", flat=True)) == ["alice"]


# --- tokens --------------------------------------------------------------------------------------


def test_token_create_stores_only_the_sha256_of_the_secret(alice):
    issued = token_create(user=alice, scopes=["read"])
    token = ApiToken.objects.get(pk=issued.token.pk)
    assert token.secret_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    stored = [str(getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields]
    assert not any(issued.secret in value for value in stored)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scopes": []},
        {"scopes": ["fly"]},
        {"scopes": ["read"], "prefix": "/x"},
        {"scopes": ["read"], "expires_in": 0},
    ],
)
def test_token_create_refuses_bad_input(alice, kwargs):
    with pytest.raises(InvalidInput):
        token_create(user=alice, **kwargs)
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "held,prefix_held,asked,prefix_asked,allowed",
    [
        (["read"], None, ["read"], None, True),
        (["read"], None, ["write"], None, False),
        (["read"], None, ["*"], None, False),
        (["*"], None, ["*"], None, True),
        (["*"], "a/", ["read"], "a/b/", True),
        (["*"], "a/", ["read"], None, False),
        (["*"], "a/", ["read"], "b/", False),
    ],
)
def test_token_create_grants_no_more_than_the_issuer_holds(
    alice, bob, held, prefix_held, asked, prefix_asked, allowed
):
    credential = token_credential(alice, held, prefix_held)
    if allowed:
        token_create(user=bob, scopes=asked, prefix=prefix_asked, credential=credential)
    else:
        with pytest.raises(Forbidden):
            token_create(user=bob, scopes=asked, prefix=prefix_asked, credential=credential)
    assert ApiToken.objects.filter(user=bob).exists() == allowed


def test_token_revoke_is_idempotent_and_unknown_is_not_found(alice):
    token = token_create(user=alice, scopes=["read"]).token
    first = token_revoke(token_id=token.pk).revoked_at
    assert first is not None
    assert token_revoke(token_id=token.pk).revoked_at == first
    with pytest.raises(NotFound):
        token_revoke(token_id="tok_missing")


# --- JWT -----------------------------------------------------------------------------------------


def test_jwt_login_checks_the_password(alice):
    with pytest.raises(AuthenticationFailed):
        jwt_login(username="alice", password="wrong")
    pair = jwt_login(username="alice", password=PASSWORD)
    assert AccessToken(pair["access"])["sub"] == "alice"


def test_jwt_refresh_takes_only_refresh_jwts(alice):
    pair = jwt_issue(user=alice)
    assert AccessToken(jwt_refresh(refresh=pair["refresh"])["access"])["sub"] == "alice"
    with pytest.raises(AuthenticationFailed):
        jwt_refresh(refresh=pair["access"])


# --- first boot ----------------------------------------------------------------------------------


def test_root_bootstrap_creates_root_and_a_working_token_once(settings):
    settings.KVS_BOOTSTRAP_TOKEN = ""
    first = root_bootstrap()
    assert first.created and first.token and first.password
    root = User.objects.get(username="root")
    assert root.is_superuser and root.check_password(first.password)
    assert root.tokens.get().scopes == ["*"]
    assert root_bootstrap().created is False
    assert ApiToken.objects.count() == 1
