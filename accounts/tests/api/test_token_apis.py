"""The tokens API: issuing (secret once, never stored), listing, revoking, and no escalation."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import token_create

from ..helpers import all_scopes_but, assert_error, bearer, call

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens"
WHOAMI = "/api/v1/whoami"
LIST_FIELDS = {
    "id",
    "user",
    "name",
    "scopes",
    "prefix",
    "created_at",
    "expires_at",
    "revoked_at",
    "active",
}


@pytest.fixture
def victim(bob) -> ApiToken:
    """A token of bob's that the revocation endpoint may be pointed at."""
    return token_create(user=bob, scopes=["read"]).token


def endpoints(victim):
    return [
        ("get", TOKENS, None, "admin:tokens:create", 200),
        ("post", TOKENS, {"user": "bob", "scopes": ["read"]}, "admin:tokens:create", 201),
        ("delete", f"{TOKENS}/{victim.pk}", None, "admin:tokens:revoke", 204),
    ]


def issue(client, **body):
    return client.post(TOKENS, body, format="json")


def rows_containing(text: str) -> list[str]:
    """The tables with a row in which some column contains `text`."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                cells = [
                    bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
                    for v in row
                ]
                if any(text in cell for cell in cells):
                    found.append(table)
    return found


# --- scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", range(3))
def test_the_scope_allows(make_client, victim, which):
    method, path, body, scope, ok = endpoints(victim)[which]
    response = call(make_client(scopes=[scope, "read"]), method, path, body)
    assert response.status_code == ok, response.content


@pytest.mark.parametrize("which", range(3))
def test_every_other_scope_is_403(make_client, victim, which):
    method, path, body, scope, ok = endpoints(victim)[which]
    count = ApiToken.objects.count()
    assert_error(call(make_client(scopes=all_scopes_but(scope)), method, path, body), 403)
    assert ApiToken.objects.count() == count + 1  # only the client's own token was added
    victim.refresh_from_db()
    assert victim.revoked_at is None


@pytest.mark.parametrize("which", range(3))
def test_no_credential_is_401(anon, victim, which):
    method, path, body, scope, ok = endpoints(victim)[which]
    assert_error(call(anon, method, path, body), 401)
    victim.refresh_from_db()
    assert victim.revoked_at is None
    assert ApiToken.objects.count() == 1


# --- issuing -------------------------------------------------------------------------------------


def test_issue_answers_the_secret_and_the_token_works(api, bob):
    body = {"user": "bob", "scopes": ["read", "write"], "prefix": "team/", "name": "ci"}
    response = issue(api, **body)
    assert response.status_code == 201
    data = response.json()
    assert {"id", "token", "scopes", "expires_at", "prefix", "name", "user"} <= set(data)
    assert (data["user"], data["scopes"], data["prefix"], data["name"]) == (
        "bob",
        ["read", "write"],
        "team/",
        "ci",
    )
    assert data["expires_at"] is None and data["active"] is True
    me = bearer(data["token"]).get(WHOAMI).json()
    assert (me["username"], me["scopes"], me["prefix"], me["auth"]) == (
        "bob",
        ["read", "write"],
        "team/",
        "token",
    )


def test_expires_in_sets_expires_at_and_an_expired_token_is_401(api, bob):
    before = timezone.now()
    data = issue(api, user="bob", scopes=["read"], expires_in=3600).json()
    token = ApiToken.objects.get(pk=data["id"])
    assert (
        before + timedelta(seconds=3600) <= token.expires_at <= timezone.now() + timedelta(hours=1)
    )
    client = bearer(data["token"])
    assert client.get(WHOAMI).status_code == 200
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires_at"])
    assert_error(client.get(WHOAMI), 401)


def test_user_defaults_to_the_caller(make_client):
    data = issue(make_client(scopes=["admin:tokens:create", "read"]), scopes=["read"]).json()
    assert data["user"] == "alice"


def test_duplicate_scopes_are_stored_once(api, bob):
    assert issue(api, user="bob", scopes=["read", "read"]).json()["scopes"] == ["read"]


@pytest.mark.parametrize(
    "body,named",
    [
        ({"user": "bob", "scopes": []}, None),
        ({"user": "bob"}, None),
        ({"user": "bob", "scopes": "read"}, None),
        ({"user": "bob", "scopes": ["read", "fly", "admin:everything"]}, "admin:everything"),
        ({"user": "ghost", "scopes": ["read"]}, "ghost"),
        ({"user": "bob", "scopes": ["read"], "expires_in": 0}, None),
        ({"user": "bob", "scopes": ["read"], "expires_in": -5}, None),
        ({"user": "bob", "scopes": ["read"], "expires_in": "soon"}, None),
        ({"user": "bob", "scopes": ["read"], "prefix": "/abs"}, None),
        ({"user": "bob", "scopes": ["read"], "prefix": "a//b"}, None),
        ({"user": "bob", "scopes": ["read"], "prefix": "_reserved/"}, None),
        ({"user": "bob", "scopes": ["read"], "name": "n" * 101}, None),
    ],
)
def test_bad_requests_are_400_and_issue_nothing(api, bob, body, named):
    error = assert_error(issue(api, **body), 400)
    if named:
        assert named in error["detail"]
    assert not ApiToken.objects.filter(user=bob).exists()


def test_an_empty_prefix_means_unconfined(api, bob):
    assert issue(api, user="bob", scopes=["read"], prefix="").json()["prefix"] is None


# --- secrets are never stored or shown again -----------------------------------------------------


def test_the_secret_is_stored_in_no_column_of_any_table(api, bob):
    data = issue(api, user="bob", scopes=["read"], name="scan-me").json()
    secret = data["token"]
    assert "accounts_apitoken" in rows_containing(data["id"])  # the scan does see the row
    assert rows_containing(secret) == []
    assert rows_containing(secret.removeprefix("kvs_")) == []


def test_the_list_never_shows_a_secret_or_its_hash(api, bob):
    data = issue(api, user="bob", scopes=["read"]).json()
    response = api.get(TOKENS)
    token = ApiToken.objects.get(pk=data["id"])
    assert data["token"] not in response.content.decode()
    assert token.secret_hash not in response.content.decode()
    listed = response.json()
    assert all(set(item) == LIST_FIELDS for item in listed)
    assert [item["id"] for item in listed] == [api.token.token.pk, data["id"]]


def test_the_list_filters_by_user(api, bob, alice):
    mine = token_create(user=bob, scopes=["read"]).token
    token_create(user=alice, scopes=["read"])
    assert [t["id"] for t in api.get(TOKENS, {"user": "bob"}).json()] == [mine.pk]
    assert api.get(TOKENS, {"user": "nobody"}).json() == []


# --- revocation ----------------------------------------------------------------------------------


def test_revocation_is_401_on_the_next_request(api, victim, bob):
    issued = token_create(user=bob, scopes=["read"])
    client = bearer(issued.secret)
    assert client.get(WHOAMI).status_code == 200  # verified and cached
    assert api.delete(f"{TOKENS}/{issued.token.pk}").status_code == 204
    assert_error(client.get(WHOAMI), 401)
    listed = {t["id"]: t for t in api.get(TOKENS).json()}[issued.token.pk]
    assert listed["active"] is False and listed["revoked_at"] is not None
    assert bearer(token_create(user=bob, scopes=["read"]).secret).get(WHOAMI).status_code == 200


def test_revoking_twice_is_204_and_keeps_the_first_time(api, victim):
    assert api.delete(f"{TOKENS}/{victim.pk}").status_code == 204
    victim.refresh_from_db()
    first = victim.revoked_at
    assert api.delete(f"{TOKENS}/{victim.pk}").status_code == 204
    victim.refresh_from_db()
    assert victim.revoked_at == first


def test_revoking_an_unknown_token_is_404(api):
    assert_error(api.delete(f"{TOKENS}/tok_nope"), 404)


def test_a_token_can_revoke_itself(make_client):
    client = make_client(scopes=["admin:tokens:revoke"])
    assert client.delete(f"{TOKENS}/{client.token.token.pk}").status_code == 204
    assert_error(client.get(WHOAMI), 401)


# --- no escalation -------------------------------------------------------------------------------


@pytest.mark.parametrize("scopes", [["write"], ["read", "delete"], ["*"], ["admin:users:create"]])
def test_a_credential_cannot_grant_scopes_it_lacks(make_client, bob, scopes):
    client = make_client(scopes=["admin:tokens:create", "read"])
    assert_error(issue(client, user="bob", scopes=scopes), 403)
    assert not ApiToken.objects.filter(user=bob).exists()
    assert issue(client, user="bob", scopes=["read"]).status_code == 201


@pytest.mark.parametrize("prefix", [None, "", "other/", "team", "tea"])
def test_a_confined_credential_cannot_grant_beyond_its_prefix(make_client, bob, prefix):
    client = make_client(scopes=["*"], prefix="team/")
    assert_error(issue(client, user="bob", scopes=["read"], prefix=prefix), 403)
    assert not ApiToken.objects.filter(user=bob).exists()


@pytest.mark.parametrize("prefix", ["team/", "team/sub/", "team/x"])
def test_a_confined_credential_may_grant_within_its_prefix(make_client, bob, prefix):
    client = make_client(scopes=["*"], prefix="team/")
    response = issue(client, user="bob", scopes=["read"], prefix=prefix)
    assert response.status_code == 201 and response.json()["prefix"] == prefix


def test_a_non_superuser_credential_cannot_issue_tokens_for_a_superuser(make_client, root_user):
    client = make_client(scopes=["*"])  # alice holds every scope but is no superuser
    assert_error(issue(client, user="root", scopes=["read"]), 403)
    assert ApiToken.objects.filter(user=root_user).count() == 0


def test_a_superusers_narrowed_token_cannot_mint_a_wider_one(make_client, root_user):
    client = make_client(user=root_user, scopes=["admin:tokens:create", "read"])
    assert_error(issue(client, user="root", scopes=["*"]), 403)
    assert issue(client, user="root", scopes=["read"]).status_code == 201


def test_a_superuser_credential_may_grant_anything(api, bob):
    response = issue(api, user="bob", scopes=["*"])
    assert response.status_code == 201
    assert bearer(response.json()["token"]).get("/api/v1/users").status_code == 200
