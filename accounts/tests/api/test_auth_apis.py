"""Login, refresh, JWTs as bearer credentials, sessions, and whoami."""

import base64
import hashlib
import hmac
import json
import os
from datetime import timedelta

import jwt as pyjwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.authentication import PASSWORD_CLAIM, jwt_password_stamp
from accounts.models import User
from accounts.services import jwt_issue

from ..conftest import PASSWORD
from ..helpers import assert_error, bearer

pytestmark = pytest.mark.django_db

LOGIN, REFRESH, WHOAMI = "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/whoami"
KEY = "/api/v1/kv/notes/1"


def login(client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password}, format="json")


def valid_access_claims(user: User) -> dict:
    """The claims of a genuine access JWT of `user`, to re-sign or alter."""
    return dict(AccessToken(jwt_issue(user=user)["access"]).payload)


# --- login and refresh ---------------------------------------------------------------------------


def test_login_gives_jwts_that_authenticate(anon, alice):
    response = login(anon, "alice", PASSWORD)
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    me = bearer(tokens["access"]).get(WHOAMI).json()
    assert (me["username"], me["auth"], me["prefix"]) == ("alice", "jwt", None)
    alice.refresh_from_db()
    assert alice.last_login is not None


@pytest.mark.parametrize(
    "username,password",
    [("alice", "wrong-password"), ("nobody", PASSWORD), ("alice", PASSWORD.upper())],
)
def test_login_with_bad_credentials_is_401(anon, alice, username, password):
    body = assert_error(login(anon, username, password), 401)
    assert "access" not in body


def test_login_of_an_inactive_user_is_401(anon, alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert_error(login(anon, "alice", PASSWORD), 401)


@pytest.mark.parametrize("body", [{}, {"username": "alice"}, {"password": PASSWORD}, []])
def test_login_without_both_fields_is_400(anon, alice, body):
    assert_error(anon.post(LOGIN, body, format="json"), 400)


def test_login_ignores_a_bad_bearer_header(alice):
    assert login(bearer("kvs_stale"), "alice", PASSWORD).status_code == 200


def test_refresh_gives_a_new_access_jwt(anon, alice):
    tokens = login(anon, "alice", PASSWORD).json()
    response = anon.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 200
    access = response.json()["access"]
    assert bearer(access).get(WHOAMI).json()["username"] == "alice"


@pytest.mark.parametrize("which", ["access", "garbage", "tampered"])
def test_refresh_with_anything_but_a_valid_refresh_jwt_is_401(anon, alice, which):
    tokens = jwt_issue(user=alice)
    value = {
        "access": tokens["access"],  # the wrong type of JWT
        "garbage": "not.a.jwt",
        "tampered": tokens["refresh"][:-4]
        + ("AAAA" if tokens["refresh"][-4:] != "AAAA" else "BBBB"),
    }[which]
    assert_error(anon.post(REFRESH, {"refresh": value}, format="json"), 401)


def test_a_refresh_jwt_is_not_an_access_credential(alice):
    assert_error(bearer(jwt_issue(user=alice)["refresh"]).get(WHOAMI), 401)


def test_refresh_for_an_inactive_or_deleted_user_is_401(anon, alice, bob):
    alice_refresh, bob_refresh = jwt_issue(user=alice)["refresh"], jwt_issue(user=bob)["refresh"]
    User.objects.filter(pk=alice.pk).update(is_active=False)
    bob.delete()
    assert_error(anon.post(REFRESH, {"refresh": alice_refresh}, format="json"), 401)
    assert_error(anon.post(REFRESH, {"refresh": bob_refresh}, format="json"), 401)


# --- JWTs as bearer credentials ------------------------------------------------------------------


def test_a_users_jwt_carries_key_and_pubsub_scopes_but_no_admin_scope(jwt_client, alice):
    client = jwt_client(alice)
    assert client.get(WHOAMI).json()["scopes"] == ["read", "write", "delete", "pubsub"]
    assert client.put(KEY, data=b'"hi"', content_type="application/json").status_code == 201
    assert client.get(KEY).json()["value"] == "hi"
    assert client.delete(KEY).status_code == 204
    assert_error(client.get("/api/v1/users"), 403)
    assert_error(client.post("/api/v1/tokens", {"scopes": ["read"]}, format="json"), 403)


def test_a_superusers_jwt_carries_every_scope(jwt_client, root_user):
    client = jwt_client(root_user)
    assert client.get(WHOAMI).json()["scopes"] == ["*"]
    assert client.get("/api/v1/users").status_code == 200
    created = client.post(
        "/api/v1/users", {"username": "carol", "is_superuser": True}, format="json"
    )
    assert created.status_code == 201


def test_an_expired_jwt_is_401(alice):
    access = AccessToken(jwt_issue(user=alice)["access"])
    access.set_exp(
        from_time=access.current_time - timedelta(hours=1), lifetime=timedelta(minutes=5)
    )
    body = assert_error(bearer(str(access)).get(WHOAMI), 401)
    assert "expired" in body["detail"]


def test_a_tampered_jwt_is_401(alice, root_user):
    header, payload, signature = jwt_issue(user=alice)["access"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "root"  # become root, keeping alice's signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_error(bearer(f"{header}.{forged}.{signature}").get(WHOAMI), 401)
    assert_error(bearer(f"{header}.{payload}.{signature[::-1]}").get(WHOAMI), 401)


def test_a_jwt_signed_with_another_key_is_401(alice):
    claims = valid_access_claims(alice)
    assert (
        bearer(pyjwt.encode(claims, django_settings.SIMPLE_JWT["SIGNING_KEY"], "HS256"))
        .get(WHOAMI)
        .status_code
        == 200
    )  # the same claims, properly signed, pass
    other = pyjwt.encode(claims, "another-cluster-secret-of-32-bytes-or-more", "HS256")
    assert_error(bearer(other).get(WHOAMI), 401)


def test_an_unsigned_jwt_is_401(alice):
    claims = valid_access_claims(alice)
    assert_error(bearer(pyjwt.encode(claims, None, "none") + "x").get(WHOAMI), 401)
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_error(bearer(f"{header}.{payload}.AAAA").get(WHOAMI), 401)


def test_the_jwt_of_an_inactive_user_is_401(jwt_client, alice):
    client = jwt_client(alice)
    assert client.get(WHOAMI).status_code == 200
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert_error(client.get(WHOAMI), 401)


def test_the_jwt_of_a_deleted_user_is_401(jwt_client, alice):
    client = jwt_client(alice)
    alice.delete()
    assert_error(client.get(WHOAMI), 401)


def test_a_new_password_voids_earlier_jwts(anon, jwt_client, alice):
    client = jwt_client(alice)
    refresh = jwt_issue(user=alice)["refresh"]
    alice.set_password("another-pass-7")
    alice.save()
    assert_error(client.get(WHOAMI), 401)
    assert_error(anon.post(REFRESH, {"refresh": refresh}, format="json"), 401)
    assert (
        bearer(login(anon, "alice", "another-pass-7").json()["access"]).get(WHOAMI).status_code
        == 200
    )


def test_a_jwt_without_the_password_stamp_is_401(alice):
    access = AccessToken.for_user(alice)  # a valid signature, but not issued by our login
    assert PASSWORD_CLAIM not in access
    assert_error(bearer(str(access)).get(WHOAMI), 401)
    access[PASSWORD_CLAIM] = jwt_password_stamp(alice)
    assert bearer(str(access)).get(WHOAMI).status_code == 200


def test_the_signing_key_is_derived_from_the_cluster_secret():
    if os.environ.get("KVS_JWT_SIGNING_KEY"):
        pytest.skip("KVS_JWT_SIGNING_KEY is configured explicitly")
    secret = django_settings.KVS_CLUSTER_SECRET.encode()
    expected = hmac.new(secret, b"kvsite-jwt", hashlib.sha256).hexdigest()
    assert django_settings.SIMPLE_JWT["SIGNING_KEY"] == expected
    assert RefreshToken().token_backend.signing_key == expected


# --- sessions ------------------------------------------------------------------------------------


def test_a_session_user_has_their_default_scopes(alice):
    client = APIClient()
    client.force_login(alice)
    me = client.get(WHOAMI).json()
    assert (me["username"], me["auth"], me["scopes"]) == (
        "alice",
        "session",
        ["read", "write", "delete", "pubsub"],
    )
    assert client.put(KEY, data=b"1", content_type="application/json").status_code == 201
    assert_error(client.get("/api/v1/users"), 403)


def test_a_superuser_session_has_every_scope(root_user):
    client = APIClient()
    client.force_login(root_user)
    assert client.get(WHOAMI).json()["scopes"] == ["*"]
    assert client.get("/api/v1/users").status_code == 200


# --- whoami --------------------------------------------------------------------------------------


def test_whoami_with_a_token(make_client, alice):
    Group.objects.create(name="ops").user_set.add(alice)
    client = make_client(scopes=["read", "pubsub"], prefix="team/")
    assert client.get(WHOAMI).json() == {
        "username": "alice",
        "scopes": ["read", "pubsub"],
        "groups": ["ops"],
        "prefix": "team/",
        "superuser": False,
        "auth": "token",
    }


def test_whoami_of_root(api):
    me = api.get(WHOAMI).json()
    assert (me["username"], me["superuser"], me["scopes"]) == ("root", True, ["*"])


def test_whoami_without_a_credential_is_401(anon):
    assert_error(anon.get(WHOAMI), 401)
    assert_error(bearer("kvs_nope").get(WHOAMI), 401)
    assert_error(bearer("a.b.c").get(WHOAMI), 401)


def test_whoami_with_auth_off_is_the_unrestricted_anonymous(anon, settings):
    settings.KVS_AUTH_ENABLED = False
    me = anon.get(WHOAMI).json()
    assert (me["username"], me["scopes"], me["auth"]) == (None, ["*"], "none")


ABSURD_CLAIMS = [
    pytest.param({"exp": 1e30}, id="exp-1e30"),
    pytest.param({"exp": 2**70}, id="exp-2**70"),
    pytest.param({"exp": float("inf")}, id="exp-infinity"),
    pytest.param({"exp": float("nan")}, id="exp-nan"),
    pytest.param({"exp": -1}, id="exp-negative"),
    pytest.param({"exp": "tomorrow"}, id="exp-string"),
    pytest.param({"exp": None}, id="exp-null"),
    pytest.param({"exp": [1]}, id="exp-list"),
    pytest.param({"iat": 1e30}, id="iat-1e30"),
    pytest.param({"iat": "x"}, id="iat-string"),
    pytest.param({"nbf": 1e30}, id="nbf-1e30"),
    pytest.param({"sub": 123}, id="sub-integer"),
    pytest.param({"token_type": "refresh"}, id="refresh-type"),
    pytest.param({"jti": None, "token_type": None}, id="no-id-no-type"),
]


def signed_jwt(claims: dict) -> str:
    """`claims` signed with the cluster's real JWT key (claims set to None are left out)."""
    kept = {name: value for name, value in claims.items() if value is not None}
    return pyjwt.encode(kept, django_settings.SIMPLE_JWT["SIGNING_KEY"], "HS256")


@pytest.mark.parametrize("changes", ABSURD_CLAIMS)
def test_a_properly_signed_jwt_with_absurd_claims_is_401(alice, changes):
    raw = signed_jwt({**valid_access_claims(alice), **changes})
    body = assert_error(bearer(raw).get(WHOAMI), 401)
    assert body["code"] == "unauthenticated"


@pytest.mark.parametrize("changes", ABSURD_CLAIMS)
def test_a_refresh_with_absurd_claims_is_401(anon, alice, changes):
    claims = dict(RefreshToken(jwt_issue(user=alice)["refresh"]).payload)
    if "token_type" not in changes:
        changes = {**changes, "token_type": "refresh"}
    elif changes["token_type"] == "refresh":
        changes = {"token_type": "access"}
    raw = signed_jwt({**claims, **changes})
    response = anon.post(REFRESH, {"refresh": raw}, format="json")
    assert assert_error(response, 401)["code"] == "unauthenticated"
