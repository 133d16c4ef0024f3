"""The accounts admin: tokens are issued through accounts.services (the secret shown once, only
its hash stored) and revoked with an action; groups show and edit their members."""

import re
from datetime import UTC

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken, User
from accounts.services import token_create
from accounts.tokens import token_hash
from kv import services

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"kvs_[A-Za-z0-9_-]{20,}")
TOKENS = "admin:accounts_apitoken_changelist"
DJANGO_DATE = re.compile(r"(Jan|Feb|March|April|May|June|July|Aug|Sept|Oct|Nov|Dec)\.? \d+, \d{4}")


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def reads_ok(secret: str) -> int:
    """The API's answer to a read of the key `k` with this token."""
    return bearer(secret).get("/api/v1/kv/k").status_code


@pytest.fixture
def root_client(client, root_user):
    client.force_login(root_user)
    services.entry_put(key="k", value="1")
    return client


@pytest.fixture
def staff_client(client, db):
    user = User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)
    codenames = ["view_apitoken", "add_apitoken"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def token_url(token: ApiToken, view: str = "change") -> str:
    """The admin URL of a token (the admin quotes ids: their '_' is an escape character)."""
    return reverse(f"admin:accounts_apitoken_{view}", args=[quote(token.pk)])


def add_token(client, **data):
    form = {"name": "", "prefix": "", "expires_in": "", **data}
    return client.post(reverse("admin:accounts_apitoken_add"), form)


# --- creating ------------------------------------------------------------------------------------


def test_creating_a_token_shows_the_secret_once_and_stores_only_its_hash(root_client, root_user):
    response = add_token(
        root_client, user=root_user.pk, name="ci", scopes=["read", "write"], expires_in="3600"
    )
    token = ApiToken.objects.get(name="ci")
    assert response.status_code == 302
    assert response["Location"] == token_url(token)

    page = root_client.get(response["Location"]).content.decode()
    secrets_shown = SECRET.findall(page)
    assert len(secrets_shown) == 1
    secret = secrets_shown[0]
    assert "copy it now; it is not stored" in page
    assert token.secret_hash == token_hash(secret)
    assert secret not in repr(list(ApiToken.objects.values()))  # only the hash is stored
    assert (token.scopes, token.prefix) == (["read", "write"], None)
    assert token.expires_at is not None
    assert reads_ok(secret) == 200

    again = root_client.get(response["Location"]).content.decode()
    assert secret not in again and not SECRET.search(again)  # once only
    assert token.secret_hash not in again  # the hash is never shown either
    listing = root_client.get(reverse(TOKENS)).content.decode()
    assert token.pk in listing and token.secret_hash not in listing


def test_a_prefix_confines_the_new_token(root_client, root_user):
    response = add_token(root_client, user=root_user.pk, scopes=["read"], prefix="app/")
    token = ApiToken.objects.get()
    assert response.status_code == 302 and token.prefix == "app/"
    secret = SECRET.search(root_client.get(response["Location"]).content.decode()).group()
    assert reads_ok(secret) == 403  # `k` lies outside app/


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"scopes": []}, "scopes", id="no-scope"),
        pytest.param({"scopes": ["read"], "prefix": "/app"}, "prefix", id="bad-prefix"),
        pytest.param({"scopes": ["read"], "expires_in": "0"}, "expires_in", id="bad-expiry"),
        pytest.param({"scopes": ["root-powers"]}, "scopes", id="unknown-scope"),
    ],
)
def test_bad_token_input_is_a_form_error(root_client, root_user, data, field):
    response = add_token(root_client, user=root_user.pk, **data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not ApiToken.objects.exists()


def test_staff_issue_tokens_for_themselves_and_no_more_than_their_own_scopes(
    staff_client, root_user
):
    bob = User.objects.get(username="bob")
    response = add_token(staff_client, user=root_user.pk, scopes=["read"])
    assert "user" in response.context["adminform"].form.errors  # not for someone else
    response = add_token(staff_client, user=bob.pk, scopes=["admin:acl"])
    assert "cannot grant scopes it lacks" in str(response.context["adminform"].form.errors)
    assert not ApiToken.objects.exists()
    assert add_token(staff_client, user=bob.pk, scopes=["read"]).status_code == 302
    assert ApiToken.objects.get().user == bob


# --- viewing and revoking ------------------------------------------------------------------------


def test_the_revoke_action_makes_the_token_fail_with_401(root_client, root_user):
    issued = token_create(user=root_user, scopes=["read"], name="old")
    other = token_create(user=root_user, scopes=["read"], name="kept")
    assert reads_ok(issued.secret) == 200
    data = {"action": "revoke_tokens", "_selected_action": [issued.token.pk]}
    response = root_client.post(reverse(TOKENS), data, follow=True)
    assert "Revoked 1 token" in response.content.decode()
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_at is not None
    assert reads_ok(issued.secret) == 401
    assert reads_ok(other.secret) == 200


@pytest.mark.parametrize("token_id", ["tok_2400aa11bb22cc33", "tok_0123456789abcdef"])
def test_the_token_page_is_read_only_offers_revoke_and_no_delete(
    root_client, root_user, token_id, monkeypatch
):
    # "_24" is an escape ("$") in admin URLs: such an id must still find its token.
    monkeypatch.setattr("accounts.services.token_id_new", lambda: token_id)
    issued = token_create(user=root_user, scopes=["read"], name="ci")
    change = token_url(issued.token)
    page = root_client.get(change).content.decode()
    assert 'name="name"' not in page  # no editable field
    assert "Revoke this token" in page and issued.token.secret_hash not in page
    assert root_client.post(change, {"name": "renamed"}).status_code == 403
    delete = token_url(issued.token, "delete")
    assert root_client.post(delete, {"post": "yes"}).status_code == 403
    assert ApiToken.objects.get().name == "ci"
    actions = root_client.get(reverse(TOKENS)).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions if name] == ["revoke_tokens"]


def test_the_token_list_filters_by_status(root_client, root_user):
    active = token_create(user=root_user, scopes=["read"], name="active")
    revoked = token_create(user=root_user, scopes=["read"], name="revoked")
    root_client.post(
        reverse(TOKENS), {"action": "revoke_tokens", "_selected_action": [revoked.token.pk]}
    )
    shown = root_client.get(reverse(TOKENS), {"status": "revoked"}).context["cl"].result_list
    assert [t.pk for t in shown] == [revoked.token.pk]
    shown = root_client.get(reverse(TOKENS), {"status": "active"}).context["cl"].result_list
    assert [t.pk for t in shown] == [active.token.pk]


# --- users and groups ----------------------------------------------------------------------------


def test_the_group_page_shows_and_edits_its_members(root_client):
    alice = User.objects.create_user(username="alice")
    carol = User.objects.create_user(username="carol")
    group = Group.objects.create(name="ops")
    alice.groups.add(group)
    change = reverse("admin:auth_group_change", args=[group.pk])
    form = root_client.get(change).context["adminform"].form
    assert list(form.initial["members"]) == [alice.pk]
    response = root_client.post(change, {"name": "ops", "members": [carol.pk], "permissions": []})
    assert response.status_code == 302
    assert list(group.user_set.values_list("username", flat=True)) == ["carol"]
    listing = root_client.get(reverse("admin:auth_group_changelist"))
    assert listing.context["cl"].result_list[0].kv_members == 1


def test_the_user_page_lists_the_users_tokens_without_secrets(root_client, root_user):
    issued = token_create(user=root_user, scopes=["read"], name="laptop")
    page = root_client.get(reverse("admin:accounts_user_change", args=[root_user.pk]))
    html = page.content.decode()
    assert issued.token.pk in html and "laptop" in html
    assert issued.token.secret_hash not in html and issued.secret not in html


# --- the last active superuser ------------------------------------------------------------------


def user_form(user: User, **changes) -> dict:
    data = {
        "username": user.username,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "tokens-TOTAL_FORMS": "0",
        "tokens-INITIAL_FORMS": "0",
    }
    return {**data, **changes}


def change_url(user: User) -> str:
    return reverse("admin:accounts_user_change", args=[user.pk])


@pytest.mark.parametrize("field", ["is_superuser", "is_active"])
def test_the_last_active_superuser_cannot_be_demoted_or_deactivated(root_client, root_user, field):
    page = root_client.post(change_url(root_user), user_form(root_user, **{field: ""}))
    assert page.status_code == 200  # the form again, with the error
    assert "is the last active superuser" in page.content.decode()
    root_user.refresh_from_db()
    assert root_user.is_superuser and root_user.is_active


def test_with_another_superuser_the_first_may_be_demoted(root_client, root_user):
    User.objects.create_superuser(username="second", password="pw-0123456789")
    page = root_client.post(change_url(root_user), user_form(root_user, is_superuser=""))
    assert page.status_code == 302, page.content.decode()[:2000]
    root_user.refresh_from_db()
    assert not root_user.is_superuser


def test_the_last_active_superuser_cannot_be_deleted_alone_or_in_bulk(root_client, root_user):
    plain = User.objects.create_user(username="plain", password="pw-0123456789")
    delete = reverse("admin:accounts_user_delete", args=[root_user.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:accounts_user_changelist")
    root_client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [root_user.pk, plain.pk], "post": "yes"},
    )
    assert User.objects.filter(pk=root_user.pk).exists()
    assert User.objects.filter(pk=plain.pk).exists()  # refused as a whole
    assert User.objects.filter(username="root", is_superuser=True, is_active=True).exists()


# --- what staff who are not superusers get here ---------------------------------------------------


@pytest.fixture
def plain_staff(client, db):
    """Staff with no Django permission: their login's scopes hold no admin:users/groups/tokens."""
    user = User.objects.create_user(username="dora", password="dora-password-1", is_staff=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "page",
    [
        "admin:accounts_user_changelist",
        "admin:accounts_user_add",
        "admin:auth_group_changelist",
        "admin:accounts_apitoken_changelist",
        "admin:accounts_apitoken_add",
    ],
)
def test_accounts_pages_are_refused_to_staff_without_the_scopes(plain_staff, page):
    response = plain_staff.get(reverse(page))
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "<h1>Permission denied</h1>" in response.content.decode()


def test_the_index_shows_no_accounts_section_to_staff_without_the_scopes(plain_staff):
    sections = [app["app_label"] for app in plain_staff.get("/admin/").context["app_list"]]
    assert "accounts" not in sections and "auth" not in sections


@pytest.fixture
def user_manager(client, db):
    """Staff granted Django's user permissions explicitly: those still count."""
    user = User.objects.create_user(username="mia", password="mia-password-1", is_staff=True)
    codenames = ["view_user", "change_user", "delete_user"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def test_staff_with_user_permissions_change_users_but_make_no_superuser(user_manager, root_user):
    plain = User.objects.create_user(username="plain", password="pw-0123456789")
    form = user_manager.get(change_url(plain)).context["adminform"].form
    assert "is_superuser" not in form.fields and "is_staff" in form.fields
    data = user_form(plain, is_superuser="on", is_staff="on")
    assert user_manager.post(change_url(plain), data).status_code == 302
    plain.refresh_from_db()
    assert plain.is_staff and not plain.is_superuser  # staff yes, superuser no
    # A superuser's page is read-only for them, and they cannot delete one.
    assert (
        "is_active" not in user_manager.get(change_url(root_user)).context["adminform"].form.fields
    )
    assert (
        user_manager.post(change_url(root_user), user_form(root_user, email="x@y.z")).status_code
        == 403
    )
    delete = reverse("admin:accounts_user_delete", args=[root_user.pk])
    assert user_manager.post(delete, {"post": "yes"}).status_code == 403
    root_user.refresh_from_db()
    assert root_user.email == "" and root_user.is_superuser


def test_a_superuser_makes_another_superuser_here(root_client):
    plain = User.objects.create_user(username="plain", password="pw-0123456789")
    data = user_form(plain, is_superuser="on", is_staff="on")
    assert root_client.post(change_url(plain), data).status_code == 302
    plain.refresh_from_db()
    assert plain.is_superuser


# --- polish: no permission pickers, plain scopes, one date format ---------------------------------


def test_the_user_and_group_pages_have_no_permission_pickers(root_client, root_user):
    group = Group.objects.create(name="ops")
    user_page = root_client.get(change_url(root_user)).content.decode()
    assert "user_permissions" not in user_page and 'name="groups"' in user_page
    assert "Staff may log in to this admin" in user_page
    group_page = root_client.get(reverse("admin:auth_group_change", args=[group.pk]))
    html = group_page.content.decode()
    assert 'name="permissions"' not in html and 'name="members"' in html
    assert "permissions" not in group_page.context["adminform"].form.fields


def test_token_scopes_read_as_plain_words_everywhere(root_client, root_user):
    issued = token_create(user=root_user, scopes=["read", "write"], name="laptop")
    for page in (change_url(root_user), token_url(issued.token), reverse(TOKENS)):
        html = root_client.get(page).content.decode()
        assert "read, write" in html, page
        assert "[&quot;read&quot;" not in html and '["read"' not in html, page


def test_token_and_user_dates_use_the_admins_one_format(root_client, root_user):
    issued = token_create(user=root_user, scopes=["read"], name="ci", expires_in=3600)
    created = issued.token.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    for page in (change_url(root_user), token_url(issued.token), reverse(TOKENS)):
        html = root_client.get(page).content.decode()
        assert created in html, page
        assert not DJANGO_DATE.search(html), page
    joined = root_user.date_joined.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert joined in root_client.get(change_url(root_user)).content.decode()


def test_djangos_change_history_pages_use_the_admins_date_format_too(root_client):
    plain = User.objects.create_user(username="plain", password="pw-0123456789")
    assert (
        root_client.post(change_url(plain), user_form(plain, email="p@example.com")).status_code
        == 302
    )
    html = root_client.get(reverse("admin:accounts_user_history", args=[plain.pk])).content.decode()
    assert re.search(r"<th scope=\"row\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</th>", html)
    assert not DJANGO_DATE.search(html)


# --- logging in ----------------------------------------------------------------------------------


def test_admin_logins_are_throttled_like_the_apis(client, root_user, settings):
    settings.KVS_LOGIN_THROTTLE_USER = "3/day"  # no window ends mid-test
    login_url = reverse("admin:login")
    for _ in range(3):
        page = client.post(login_url, {"username": "root", "password": "wrong"})
        assert page.status_code == 200 and b"correct username and password" in page.content
    page = client.post(login_url, {"username": "root", "password": "root-password-1"})
    assert page.status_code == 200 and b"Too many failed logins" in page.content
    assert "_auth_user_id" not in client.session
    api = APIClient()
    answer = api.post("/api/v1/auth/login", {"username": "root", "password": "x"}, format="json")
    assert answer.status_code == 429


def test_admin_login_with_the_right_password_works(client, root_user):
    page = client.post(reverse("admin:login"), {"username": "root", "password": "root-password-1"})
    assert page.status_code == 302
    assert client.session["_auth_user_id"] == str(root_user.pk)
