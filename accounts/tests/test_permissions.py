"""Credentials: default scopes of logins, superuser power, prefix confinement."""

import pytest

from accounts.models import User
from accounts.permissions import AUTH_JWT, AUTH_TOKEN, Credential, user_default_scopes


def test_user_default_scopes():
    assert user_default_scopes(User(is_superuser=True)) == ("*",)
    assert user_default_scopes(User(is_superuser=False)) == ("read", "write", "delete", "pubsub")


@pytest.mark.parametrize(
    "superuser,scopes,prefix,expected",
    [
        (True, ("*",), None, True),
        (True, ("admin:users:create", "admin:users:read"), None, False),
        (True, ("*",), "team/", False),
        (False, ("*",), None, False),
    ],
)
def test_superuser_power_needs_a_superuser_with_an_unconfined_star(
    superuser, scopes, prefix, expected
):
    user = User(username="u", is_superuser=superuser)
    credential = Credential(user=user, auth=AUTH_TOKEN, scopes=scopes, prefix=prefix)
    assert credential.is_superuser is expected


@pytest.mark.parametrize(
    "own,asked,expected",
    [
        (None, None, True),
        (None, "x/", True),
        ("team/", "team/", True),
        ("team/", "team/a/", True),
        ("team/", None, False),
        ("team/", "team", False),
        ("team/", "other/", False),
    ],
)
def test_covers(own, asked, expected):
    credential = Credential(user=User(username="u"), auth=AUTH_TOKEN, scopes=("*",), prefix=own)
    assert credential.covers(asked) is expected


def test_grants():
    credential = Credential(user=User(username="u"), auth=AUTH_JWT, scopes=("read", "pubsub"))
    assert credential.grants("read") and credential.grants("pubsub")
    assert not credential.grants("write") and not credential.grants("*")
