"""Bearer values: JWT or API token, and when the verified-token cache must forget."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import bearer_authenticate, token_authenticate
from accounts.models import ApiToken
from accounts.services import jwt_issue, token_create

pytestmark = pytest.mark.django_db


def test_a_jwt_shaped_value_is_verified_as_a_jwt(alice):
    user, credential = bearer_authenticate(jwt_issue(user=alice)["access"])
    assert user == alice and isinstance(credential, AccessToken)
    with pytest.raises(AuthenticationFailed, match="JWT"):
        bearer_authenticate("aaa.bbb.ccc")


def test_any_other_value_is_an_api_token(alice):
    issued = token_create(user=alice, scopes=["read"])
    user, credential = bearer_authenticate(issued.secret)
    assert user == alice and isinstance(credential, ApiToken)
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        bearer_authenticate("kvs_unknown")


def test_verified_tokens_are_cached(alice, settings):
    settings.KVS_TOKEN_CACHE_SECONDS = 60
    secret = token_create(user=alice, scopes=["read"]).secret
    assert token_authenticate(secret) is token_authenticate(secret)


@pytest.mark.parametrize("side", ["user", "group"])
def test_a_membership_change_drops_the_cached_token(alice, settings, side):
    # Cached tokens carry their user, whose group names the ACL reads.
    settings.KVS_TOKEN_CACHE_SECONDS = 60
    ops = Group.objects.create(name="ops")
    secret = token_create(user=alice, scopes=["read"]).secret
    cached = token_authenticate(secret)
    if side == "user":
        alice.groups.add(ops)
    else:
        ops.user_set.add(alice)
    assert token_authenticate(secret) is not cached
    fresh = token_authenticate(secret)
    ops.user_set.clear()
    assert token_authenticate(secret) is not fresh
