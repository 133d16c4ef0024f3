"""The users API: scopes, validation, superuser rules and what changes take effect."""

import orjson
import pytest
from django.contrib.auth.models import Group

from accounts.models import ApiToken, User
from accounts.services import token_create
from cluster.records import record_key
from kv.models import Entry

from ..conftest import PASSWORD
from ..helpers import all_scopes_but, assert_error, bearer, call

pytestmark = pytest.mark.django_db

USERS = "/api/v1/users"
LOGIN = "/api/v1/auth/login"

ENDPOINTS = [
    ("get", USERS, None, "admin:users:read", 200),
    ("post", USERS, {"username": "carol"}, "admin:users:create", 201),
    ("get", f"{USERS}/bob", None, "admin:users:read", 200),
    ("patch", f"{USERS}/bob", {"email": "new@example.com"}, "admin:users:update", 200),
    ("delete", f"{USERS}/bob", None, "admin:users:delete", 204),
]


def bob_unchanged() -> bool:
    bob = User.objects.filter(username="bob").first()
    return bob is not None and bob.email == "bob@example.com"


# --- scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_the_scope_allows(make_client, bob, method, path, body, scope, ok):
    response = call(make_client(scopes=[scope]), method, path, body)
    assert response.status_code == ok, response.content


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_every_other_scope_is_403(make_client, bob, method, path, body, scope, ok):
    assert_error(call(make_client(scopes=all_scopes_but(scope)), method, path, body), 403)
    assert bob_unchanged()
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_no_credential_is_401(anon, bob, method, path, body, scope, ok):
    assert_error(call(anon, method, path, body), 401)
    assert bob_unchanged()


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_an_invalid_token_is_401(bob, method, path, body, scope, ok):
    assert_error(call(bearer("kvs_not-a-token"), method, path, body), 401)


# --- create --------------------------------------------------------------------------------------


def test_create_answers_the_user_and_the_password_works(api, anon):
    Group.objects.create(name="ops")
    body = {"username": "carol", "password": PASSWORD, "email": "c@example.com", "groups": ["ops"]}
    response = api.post(USERS, body, format="json")
    assert response.status_code == 201
    data = response.json()
    assert {k: data[k] for k in ("username", "email", "groups", "is_superuser", "is_active")} == {
        "username": "carol",
        "email": "c@example.com",
        "groups": ["ops"],
        "is_superuser": False,
        "is_active": True,
    }
    assert data["date_joined"]
    assert "password" not in data
    login = anon.post(LOGIN, {"username": "carol", "password": PASSWORD}, format="json")
    assert login.status_code == 200


def test_a_user_created_without_password_cannot_log_in(api, anon):
    assert api.post(USERS, {"username": "robot"}, format="json").status_code == 201
    assert not User.objects.get(username="robot").has_usable_password()
    assert_error(anon.post(LOGIN, {"username": "robot", "password": ""}, format="json"), 400)
    assert_error(anon.post(LOGIN, {"username": "robot", "password": "x"}, format="json"), 401)


def test_duplicate_username_is_409(api, bob):
    assert_error(api.post(USERS, {"username": "bob"}, format="json"), 409)
    assert User.objects.filter(username="bob").count() == 1


def test_unknown_groups_are_400_naming_them(api):
    Group.objects.create(name="ops")
    body = {"username": "carol", "groups": ["ops", "ghosts", "phantoms"]}
    error = assert_error(api.post(USERS, body, format="json"), 400)
    assert "ghosts" in error["detail"] and "phantoms" in error["detail"]
    assert "ops" not in error["detail"]
    assert not User.objects.filter(username="carol").exists()


def test_a_password_the_validators_refuse_is_400_with_their_message(api):
    error = assert_error(
        api.post(USERS, {"username": "carol", "password": "short"}, format="json"), 400
    )
    assert "too short" in error["detail"]
    assert error["errors"]["password"]
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize("username", ["", "has space", "slash/y", "x" * 151, None])
def test_a_bad_username_is_400(api, username):
    assert_error(api.post(USERS, {"username": username}, format="json"), 400)
    assert User.objects.count() == 1  # root


def test_a_superuser_credential_may_create_a_superuser(api):
    response = api.post(USERS, {"username": "carol", "is_superuser": True}, format="json")
    assert response.status_code == 201 and response.json()["is_superuser"] is True
    carol = User.objects.get(username="carol")
    assert carol.is_superuser and carol.is_staff


def test_a_non_superuser_credential_cannot_create_a_superuser(make_client):
    client = make_client(scopes=["*"])  # alice: every scope, but not a superuser
    assert_error(
        client.post(USERS, {"username": "carol", "is_superuser": True}, format="json"), 403
    )
    assert not User.objects.filter(username="carol").exists()
    plain = client.post(USERS, {"username": "carol", "is_superuser": False}, format="json")
    assert plain.status_code == 201


def test_a_superusers_narrowed_token_cannot_create_a_superuser(make_client, root_user):
    client = make_client(user=root_user, scopes=["admin:users:create"])
    assert_error(
        client.post(USERS, {"username": "carol", "is_superuser": True}, format="json"), 403
    )
    assert not User.objects.filter(username="carol").exists()


# --- read ----------------------------------------------------------------------------------------


def test_list_is_every_user_by_name_with_groups(api, alice, bob):
    Group.objects.create(name="ops").user_set.add(bob)
    users = api.get(USERS).json()
    assert [u["username"] for u in users] == ["alice", "bob", "root"]
    assert [u["groups"] for u in users] == [[], ["ops"], []]
    assert all("password" not in u for u in users)


def test_get_one_user(api, bob):
    data = api.get(f"{USERS}/bob").json()
    assert (data["username"], data["email"], data["is_superuser"]) == (
        "bob",
        "bob@example.com",
        False,
    )


def test_unknown_user_is_404(api):
    assert_error(api.get(f"{USERS}/nobody"), 404)
    assert_error(api.patch(f"{USERS}/nobody", {"email": ""}, format="json"), 404)
    assert_error(api.delete(f"{USERS}/nobody"), 404)


# --- update --------------------------------------------------------------------------------------


def test_patch_changes_email_and_replaces_groups(api, bob):
    ops, dev = Group.objects.create(name="ops"), Group.objects.create(name="dev")
    ops.user_set.add(bob)
    body = {"email": "b2@example.com", "groups": ["dev"]}
    response = api.patch(f"{USERS}/bob", body, format="json")
    assert response.status_code == 200
    assert response.json()["groups"] == ["dev"]
    bob.refresh_from_db()
    assert bob.email == "b2@example.com"
    assert list(bob.groups.all()) == [dev]
    assert api.patch(f"{USERS}/bob", {"groups": []}, format="json").json()["groups"] == []


def test_patch_with_unknown_groups_changes_nothing(api, bob):
    body = {"email": "b2@example.com", "groups": ["ghosts"]}
    assert "ghosts" in assert_error(api.patch(f"{USERS}/bob", body, format="json"), 400)["detail"]
    assert bob_unchanged()


def test_patch_with_nothing_to_change_is_400(api, bob):
    assert_error(api.patch(f"{USERS}/bob", {}, format="json"), 400)
    assert_error(api.patch(f"{USERS}/bob", {"username": "robert"}, format="json"), 400)
    assert User.objects.filter(username="bob").exists()


def test_patch_password_changes_the_login(api, anon, bob):
    assert (
        api.patch(f"{USERS}/bob", {"password": "another-pass-7"}, format="json").status_code == 200
    )
    old = anon.post(LOGIN, {"username": "bob", "password": PASSWORD}, format="json")
    new = anon.post(LOGIN, {"username": "bob", "password": "another-pass-7"}, format="json")
    assert (old.status_code, new.status_code) == (401, 200)


def test_patch_password_is_validated(api, bob):
    assert_error(api.patch(f"{USERS}/bob", {"password": "short"}, format="json"), 400)
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)


def test_deactivating_a_user_voids_their_token_at_once(api, make_client, bob):
    client = make_client(user=bob, scopes=["read"])
    assert client.get("/api/v1/whoami").status_code == 200  # now cached as verified
    assert (
        api.patch(f"{USERS}/bob", {"is_active": False}, format="json").json()["is_active"] is False
    )
    assert_error(client.get("/api/v1/whoami"), 401)
    assert api.patch(f"{USERS}/bob", {"is_active": True}, format="json").status_code == 200
    assert client.get("/api/v1/whoami").status_code == 200


def test_promotion_needs_a_superuser_credential(api, make_client, bob):
    alice = make_client(scopes=["*"])
    assert_error(alice.patch(f"{USERS}/bob", {"is_superuser": True}, format="json"), 403)
    assert not User.objects.get(username="bob").is_superuser
    response = api.patch(f"{USERS}/bob", {"is_superuser": True}, format="json")
    assert response.status_code == 200 and response.json()["is_superuser"] is True


def test_a_non_superuser_credential_cannot_change_or_delete_a_superuser(make_client, root_user):
    alice = make_client(scopes=["*"])
    assert_error(alice.patch(f"{USERS}/root", {"password": "taken-over-1"}, format="json"), 403)
    assert_error(alice.patch(f"{USERS}/root", {"is_active": False}, format="json"), 403)
    assert_error(alice.delete(f"{USERS}/root"), 403)
    root_user.refresh_from_db()
    assert root_user.check_password("root-password-1") and root_user.is_active


# --- the last superuser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,body",
    [("delete", None), ("patch", {"is_active": False}), ("patch", {"is_superuser": False})],
)
def test_the_last_active_superuser_cannot_be_removed(api, root_user, method, body):
    assert_error(call(api, method, f"{USERS}/root", body), 409)
    root_user.refresh_from_db()
    assert root_user.is_superuser and root_user.is_active


def test_a_superuser_can_go_while_another_remains(api, root_user):
    User.objects.create_superuser(username="admin2", password=PASSWORD)
    assert api.patch(f"{USERS}/admin2", {"is_superuser": False}, format="json").status_code == 200
    assert_error(api.delete(f"{USERS}/root"), 409)  # admin2 is no longer one
    User.objects.filter(username="admin2").update(is_superuser=True)
    assert api.delete(f"{USERS}/root").status_code == 204
    assert not User.objects.filter(username="root").exists()


def test_an_inactive_superuser_does_not_count(api, root_user):
    User.objects.create_superuser(username="admin2", password=PASSWORD, is_active=False)
    assert_error(api.delete(f"{USERS}/root"), 409)
    assert api.delete(f"{USERS}/admin2").status_code == 204


# --- delete --------------------------------------------------------------------------------------


def test_deleting_a_user_deletes_their_tokens(api, bob):
    issued = token_create(user=bob, scopes=["read"])
    client = bearer(issued.secret)
    assert client.get("/api/v1/whoami").status_code == 200
    assert api.delete(f"{USERS}/bob").status_code == 204
    assert not User.objects.filter(username="bob").exists()
    assert not ApiToken.objects.filter(pk=issued.token.pk).exists()
    assert_error(client.get("/api/v1/whoami"), 401)


def test_with_auth_off_anyone_may_administer(anon, settings, root_user):
    settings.KVS_AUTH_ENABLED = False
    body = {"username": "carol", "is_superuser": True}
    assert anon.post(USERS, body, format="json").status_code == 201
    assert anon.get(USERS).status_code == 200
    token = anon.post("/api/v1/tokens", {"user": "carol", "scopes": ["*"]}, format="json")
    assert token.status_code == 201


# --- staff: may log in to the admin, with no more rights there than their login has here ---------


def test_create_and_patch_set_is_staff_with_the_users_scopes(make_client, bob):
    creator = make_client(scopes=["admin:users:create"])
    response = creator.post(USERS, {"username": "carol", "is_staff": True}, format="json")
    assert response.status_code == 201 and response.json()["is_staff"] is True
    carol = User.objects.get(username="carol")
    assert carol.is_staff and not carol.is_superuser
    updater = make_client(scopes=["admin:users:update"])
    response = updater.patch(f"{USERS}/bob", {"is_staff": True}, format="json")
    assert response.status_code == 200
    assert (response.json()["is_staff"], response.json()["is_superuser"]) == (True, False)
    response = updater.patch(f"{USERS}/bob", {"is_staff": False}, format="json")
    assert response.status_code == 200 and not User.objects.get(username="bob").is_staff


def test_is_staff_needs_the_users_scope(make_client, bob):
    for scopes in (["admin:users:read"], all_scopes_but("admin:users:update")):
        client = make_client(scopes=scopes)
        assert_error(client.patch(f"{USERS}/bob", {"is_staff": True}, format="json"), 403)
    assert not User.objects.get(username="bob").is_staff
    no_create = make_client(scopes=all_scopes_but("admin:users:create"))
    assert_error(no_create.post(USERS, {"username": "carol", "is_staff": True}, format="json"), 403)
    assert not User.objects.filter(username="carol").exists()


def test_the_answer_shows_is_staff(api, bob):
    User.objects.filter(username="bob").update(is_staff=True)
    assert api.get(f"{USERS}/bob").json()["is_staff"] is True
    assert {u["username"]: u["is_staff"] for u in api.get(USERS).json()} == {
        "bob": True,
        "root": True,
    }


def test_only_a_superusers_credential_changes_a_superusers_staff_flag(make_client, root_user):
    User.objects.create_superuser(username="admin2", password="pw-0123456789")
    alice = make_client(scopes=["*"])
    assert_error(alice.patch(f"{USERS}/admin2", {"is_staff": False}, format="json"), 403)
    assert User.objects.get(username="admin2").is_staff


def test_a_superuser_is_always_staff(api, root_user, bob):
    User.objects.create_superuser(username="admin2", password="pw-0123456789")
    assert_error(api.patch(f"{USERS}/admin2", {"is_staff": False}, format="json"), 400)
    body = {"username": "carol", "is_superuser": True, "is_staff": False}
    assert_error(api.post(USERS, body, format="json"), 400)
    assert_error(
        api.patch(f"{USERS}/bob", {"is_superuser": True, "is_staff": False}, format="json"), 400
    )
    assert User.objects.get(username="admin2").is_staff
    assert not User.objects.filter(username="carol").exists()
    assert not User.objects.get(username="bob").is_superuser
    # A demoted superuser leaves the admin unless told to stay staff.
    response = api.patch(
        f"{USERS}/admin2", {"is_superuser": False, "is_staff": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["is_staff"] is True
    assert not User.objects.get(username="admin2").is_superuser


def test_the_staff_flag_replicates_with_the_user_record(api, bob):
    assert api.patch(f"{USERS}/bob", {"is_staff": True}, format="json").status_code == 200
    record = orjson.loads(Entry.objects.get(key=record_key("users", "bob")).value)
    assert record["is_staff"] is True and record["is_superuser"] is False
