"""Accounts fixtures: ordinary users with passwords, and their JWTs."""

import pytest

from accounts.models import User
from accounts.services import jwt_issue

from .helpers import bearer

PASSWORD = "correct-horse-9"


@pytest.fixture
def alice(db) -> User:
    """A non-superuser with a password (the user `make_client` issues tokens for by default)."""
    return User.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user(username="bob", password=PASSWORD, email="bob@example.com")


@pytest.fixture
def jwt_client():
    """jwt_client(user): a client holding a fresh JWT access token of `user`."""

    def factory(user: User):
        client = bearer(jwt_issue(user=user)["access"])
        return client

    return factory
