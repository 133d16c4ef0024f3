"""Bearer values: JWT or API token, and when the verified-token cache must forget."""

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import (
    bearer_authenticate,
    jwts_verify,
    token_authenticate,
    tokens_verify,
)
from accounts.models import ApiToken, User
from accounts.services import jwt_issue, token_create
from accounts.tokens import token_hash

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


def test_many_tokens_are_verified_in_one_query_each_as_it_stands_now(
    alice, settings, django_assert_num_queries
):
    settings.KVS_TOKEN_CACHE_SECONDS = 60
    active, revoked, expired = (token_create(user=alice, scopes=["read"]) for _ in range(3))
    token_authenticate(revoked.secret)  # cached here
    ApiToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())  # elsewhere
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now())
    digests = [token_hash(t.secret) for t in (active, revoked, expired)] + [token_hash("kvs_no")]
    with django_assert_num_queries(1):  # cached or not: read again
        verdicts = tokens_verify(digests)
    assert verdicts[digests[0]].pk == active.token.pk
    assert [str(verdicts[d].detail) for d in digests[1:]] == [
        "Token revoked.",
        "Token expired.",
        "Invalid token.",
    ]
    assert token_authenticate(active.secret) is verdicts[digests[0]]  # cached for requests
    with pytest.raises(AuthenticationFailed, match="revoked"):
        token_authenticate(revoked.secret)  # no longer the cached copy


def test_many_jwts_are_verified_with_one_query_for_their_users(alice, django_assert_num_queries):
    bob = User.objects.create_user(username="bob", password="bob-password-1")
    alices, bobs = jwt_issue(user=alice)["access"], jwt_issue(user=bob)["access"]
    User.objects.filter(pk=bob.pk).update(is_active=False)
    with django_assert_num_queries(1):
        verdicts = jwts_verify([alices, bobs, "aaa.bbb.ccc"])
    user, access = verdicts[alices]
    assert user == alice and isinstance(access, AccessToken)
    assert "inactive" in str(verdicts[bobs].detail)
    assert "Invalid JWT" in str(verdicts["aaa.bbb.ccc"].detail)
