"""The groups API: scopes, members (replaced, added, removed) and validation."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import User

from ..helpers import all_scopes_but, assert_error, call

pytestmark = pytest.mark.django_db

GROUPS = "/api/v1/groups"

ENDPOINTS = [
    ("get", GROUPS, None, "admin:groups:read", 200),
    ("post", GROUPS, {"name": "dev"}, "admin:groups:create", 201),
    ("get", f"{GROUPS}/ops", None, "admin:groups:read", 200),
    ("patch", f"{GROUPS}/ops", {"members": []}, "admin:groups:update", 200),
    ("delete", f"{GROUPS}/ops", None, "admin:groups:delete", 204),
]


@pytest.fixture
def ops(bob) -> Group:
    group = Group.objects.create(name="ops")
    group.user_set.add(bob)
    return group


def members(name: str) -> list[str]:
    return sorted(Group.objects.get(name=name).user_set.values_list("username", flat=True))


def ops_unchanged() -> bool:
    return Group.objects.filter(name="ops").exists() and members("ops") == ["bob"]


# --- scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_the_scope_allows(make_client, ops, method, path, body, scope, ok):
    response = call(make_client(scopes=[scope]), method, path, body)
    assert response.status_code == ok, response.content


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_every_other_scope_is_403(make_client, ops, method, path, body, scope, ok):
    assert_error(call(make_client(scopes=all_scopes_but(scope)), method, path, body), 403)
    assert ops_unchanged()
    assert not Group.objects.filter(name="dev").exists()


@pytest.mark.parametrize("method,path,body,scope,ok", ENDPOINTS)
def test_no_credential_is_401(anon, ops, method, path, body, scope, ok):
    assert_error(call(anon, method, path, body), 401)
    assert ops_unchanged()


# --- create and read -----------------------------------------------------------------------------


def test_create_with_members(api, alice, bob):
    response = api.post(GROUPS, {"name": "dev", "members": ["bob", "alice"]}, format="json")
    assert response.status_code == 201
    assert response.json() == {"name": "dev", "members": ["alice", "bob"]}
    assert members("dev") == ["alice", "bob"]


def test_create_without_members(api):
    assert api.post(GROUPS, {"name": "dev"}, format="json").json() == {"name": "dev", "members": []}


def test_duplicate_group_is_409(api, ops):
    assert_error(api.post(GROUPS, {"name": "ops"}, format="json"), 409)
    assert ops_unchanged()


def test_unknown_members_are_400_naming_them(api, bob):
    body = {"name": "dev", "members": ["bob", "ghost", "phantom"]}
    error = assert_error(api.post(GROUPS, body, format="json"), 400)
    assert "ghost" in error["detail"] and "phantom" in error["detail"]
    assert not Group.objects.filter(name="dev").exists()


@pytest.mark.parametrize("name", ["", "with space", "a/b", "x" * 151, None])
def test_a_bad_group_name_is_400(api, name):
    assert_error(api.post(GROUPS, {"name": name}, format="json"), 400)
    assert not Group.objects.exists()


def test_list_is_every_group_by_name(api, ops, alice):
    Group.objects.create(name="dev").user_set.add(alice)
    assert api.get(GROUPS).json() == [
        {"name": "dev", "members": ["alice"]},
        {"name": "ops", "members": ["bob"]},
    ]


def test_get_one_group_and_unknown_is_404(api, ops):
    assert api.get(f"{GROUPS}/ops").json() == {"name": "ops", "members": ["bob"]}
    assert_error(api.get(f"{GROUPS}/nope"), 404)
    assert_error(api.patch(f"{GROUPS}/nope", {"members": []}, format="json"), 404)
    assert_error(api.delete(f"{GROUPS}/nope"), 404)


# --- update --------------------------------------------------------------------------------------


def test_patch_members_replaces_them(api, ops, alice):
    response = api.patch(f"{GROUPS}/ops", {"members": ["alice"]}, format="json")
    assert response.json() == {"name": "ops", "members": ["alice"]}
    assert members("ops") == ["alice"]


def test_patch_add_and_remove(api, ops, alice, root_user):
    body = {"add": ["alice", "root"], "remove": ["bob"]}
    assert api.patch(f"{GROUPS}/ops", body, format="json").json()["members"] == ["alice", "root"]
    assert api.patch(f"{GROUPS}/ops", {"remove": ["root"]}, format="json").json()["members"] == [
        "alice"
    ]
    assert members("ops") == ["alice"]


@pytest.mark.parametrize(
    "body",
    [
        {"add": ["ghost"]},
        {"remove": ["ghost"]},
        {"members": ["bob", "ghost"]},
        {"members": ["alice"], "add": ["bob"]},
        {"add": ["alice"], "remove": ["alice"]},
        {},
    ],
)
def test_bad_member_changes_are_400_and_change_nothing(api, ops, alice, body):
    error = assert_error(api.patch(f"{GROUPS}/ops", body, format="json"), 400)
    if "ghost" in str(body):
        assert "ghost" in error["detail"]
    assert ops_unchanged()


def test_membership_shows_on_the_user(api, ops, alice):
    api.patch(f"{GROUPS}/ops", {"add": ["alice"]}, format="json")
    assert api.get("/api/v1/users/alice").json()["groups"] == ["ops"]


# --- delete --------------------------------------------------------------------------------------


def test_delete_keeps_the_members(api, ops):
    assert api.delete(f"{GROUPS}/ops").status_code == 204
    assert not Group.objects.filter(name="ops").exists()
    assert User.objects.filter(username="bob").exists()
    assert api.get("/api/v1/users/bob").json()["groups"] == []
