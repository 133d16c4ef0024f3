"""The admin site: one Accounts section, one date format, a favicon, and error pages in the
admin's look for admin URLs while everything else keeps the API's JSON errors."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.models import User
from kvsite import exceptions

pytestmark = pytest.mark.django_db


@pytest.fixture
def root_client(client, root_user):
    client.force_login(root_user)
    return client


@pytest.fixture
def staff_client(client):
    staff = User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)
    client.force_login(staff)
    return client


def assert_admin_page(response, status: int, title: str) -> str:
    assert response.status_code == status, response.status_code
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    html = response.content.decode()
    assert f"<h1>{title}</h1>" in html and 'id="site-name"' in html
    return html


def assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.status_code
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)["code"] == code


# --- error pages ---------------------------------------------------------------------------------


def test_a_page_staff_may_not_use_is_an_admin_page_not_json(staff_client):
    html = assert_admin_page(staff_client.get("/admin/accounts/user/"), 403, "Permission denied")
    assert "Forbidden." not in html and '"detail"' not in html
    assert 'href="/admin/logout/"' in html or "logout-form" in html  # the user's own links


def test_an_unknown_admin_url_is_an_admin_404_page(root_client):
    assert_admin_page(root_client.get("/admin/kv/nothing-here/"), 404, "Page not found")


def test_outside_the_admin_errors_stay_json(root_client):
    assert_json_error(root_client.get("/nothing-here"), 404, "not_found")
    assert_json_error(root_client.get("/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize(
    ("handler", "status", "title", "code"),
    [
        (exceptions.json_bad_request, 400, "Bad request", "invalid"),
        (exceptions.json_permission_denied, 403, "Permission denied", "forbidden"),
        (exceptions.json_not_found, 404, "Page not found", "not_found"),
    ],
)
def test_each_handler_answers_html_for_the_admin_and_json_elsewhere(
    root_user, handler, status, title, code
):
    factory = RequestFactory()
    request = factory.get("/admin/kv/entry/")
    request.user = root_user
    request.session = {}
    page = handler(request, PermissionDenied())
    assert page.status_code == status and f"<h1>{title}</h1>" in page.content.decode()
    answer = handler(factory.get("/api/v1/kv/x"), PermissionDenied())
    assert_json_error(answer, status, code)


def test_a_crash_in_the_admin_is_an_admin_500_page_and_in_the_api_json(root_user, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("kv.admin.entries.visible_entries", crash)
    client = Client(raise_request_exception=False)
    client.force_login(root_user)
    html = assert_admin_page(client.get("/admin/kv/entry/"), 500, "Server error")
    assert "boom" not in html and "Traceback" not in html
    answer = exceptions.json_server_error(RequestFactory().get("/api/v1/kv/x"))
    assert_json_error(answer, 500, "internal")


# --- sections, favicon, dates --------------------------------------------------------------------


def test_groups_sit_with_users_and_tokens_under_accounts(root_client):
    Group.objects.create(name="ops")
    response = root_client.get(reverse("admin:index"))
    sections = {
        app["name"]: [m["object_name"] for m in app["models"]]
        for app in response.context["app_list"]
    }
    assert sections["Accounts"] == ["ApiToken", "Group", "User"]
    assert "Authentication and authorization" not in response.content.decode()
    assert root_client.get("/admin/auth/")["Location"] == "/admin/accounts/"
    section = root_client.get("/admin/accounts/").context["app_list"]
    assert [m["object_name"] for m in section[0]["models"]] == ["ApiToken", "Group", "User"]
    group_page = root_client.get(reverse("admin:auth_group_changelist")).content.decode()
    assert ">Accounts</a>" in group_page  # the breadcrumb too


def test_the_favicon_is_served_and_linked(root_client):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content).startswith(b"\x00\x00\x01\x00")  # an ICO
    html = root_client.get(reverse("admin:index")).content.decode()
    assert 'rel="icon" href="/static/kvsite/favicon.ico"' in html


def test_one_date_format_from_datetimes_and_from_epoch_milliseconds():
    from kvsite.admin_site import admin_age, admin_time

    moment = datetime(2026, 12, 1, 18, 34, 5, 250_000, tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    assert admin_time(moment) == admin_time(ms) == "2026-12-01 18:34:05 UTC"
    assert admin_time(None) == ""
    assert admin_age(ms - 4_200, now=ms) == "4.2 s ago"
    assert admin_age(ms - 3 * 3_600_000, now=ms) == "3 h ago"
    assert admin_age(0, now=ms) == "never"
