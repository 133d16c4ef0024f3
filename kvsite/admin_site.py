"""The admin site: one Accounts section for users, groups and tokens; one way to show a moment;
error pages in the admin's own look for admin URLs (the API keeps its JSON errors)."""

from datetime import UTC, datetime

from django.contrib.admin import AdminSite
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from kv.hlc import wall_ms

ACCOUNTS, AUTH = "accounts", "auth"  # auth holds Django's Group; it is shown under Accounts
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
FAVICON = "kvsite/favicon.ico"

ERRORS = {
    400: ("Bad request", "The request could not be understood. Go back and try again."),
    403: (
        "Permission denied",
        "Your account may not use this page. Staff who are not superusers get what their own "
        "login could do through the API (reading, writing and deleting keys as the ACL allows); "
        "users, groups, API tokens and ACL rules need a superuser.",
    ),
    404: ("Page not found", "There is nothing here: it may have been deleted, or never existed."),
    500: ("Server error", "Something went wrong on this node; it has been logged. Try again."),
}


def admin_time(moment: datetime | int | None) -> str:
    """A moment as '2026-12-01 18:34:05 UTC', from an aware datetime or epoch milliseconds."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment / 1000, tz=UTC)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def admin_age(ms: int | None, *, now: int | None = None) -> str:
    """How long ago an epoch-millisecond moment was, e.g. '4.2 s ago' or '3 h ago'."""
    if not ms:
        return "never"
    seconds = max(0, (wall_ms() if now is None else now) - ms) / 1000
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def favicon(request) -> FileResponse:
    """/favicon.ico, which browsers ask for whatever the page says: the admin's icon."""
    path = finders.find(FAVICON)
    if path is None:
        raise Http404("No favicon.")
    response = FileResponse(open(path, "rb"), content_type="image/x-icon")  # noqa: SIM115
    response["Cache-Control"] = "public, max-age=86400"
    return response


def is_admin_path(request) -> bool:
    try:
        return request.path.startswith(reverse("admin:index"))
    except NoReverseMatch:
        return False


class KvAdminSite(AdminSite):
    site_header = "kvsite"
    site_title = "kvsite admin"
    index_title = "Keys, access and accounts"
    site_url = None  # "/" only leads back here
    enable_nav_sidebar = False  # the folder browser and the forms need the width

    def get_app_list(self, request, app_label=None):
        """Django's list, with the auth app's groups moved into the Accounts section."""
        if app_label in (ACCOUNTS, AUTH):
            apps = [a for a in super().get_app_list(request) if a["app_label"] in (ACCOUNTS, AUTH)]
        else:
            apps = super().get_app_list(request, app_label)
        auth = next((a for a in apps if a["app_label"] == AUTH), None)
        if auth is None:
            return apps
        apps.remove(auth)
        accounts = next((a for a in apps if a["app_label"] == ACCOUNTS), None)
        if accounts is None:  # may see groups but nothing of accounts: keep auth's entry
            auth.update(name="Accounts", app_url=reverse("admin:app_list", args=[ACCOUNTS]))
            apps.append(auth)
            apps.sort(key=lambda a: a["name"].lower())
            return apps
        accounts["models"] = sorted(accounts["models"] + auth["models"], key=lambda m: m["name"])
        return apps

    def app_index(self, request, app_label, extra_context=None):
        if app_label == AUTH:
            return redirect("admin:app_list", ACCOUNTS)
        return super().app_index(request, app_label, extra_context)

    def error_response(self, request, status: int, exception=None) -> HttpResponse:
        """An error page in the admin's look: its header, user links and breadcrumbs."""
        title, text = ERRORS[status]
        context = {"title": title, "kv_message": text, "kv_status": status}
        detail = exception.args[0] if exception is not None and exception.args else None
        if status in (403, 404) and isinstance(detail, str) and detail:
            context["kv_detail"] = detail
        context = {"site_header": self.site_header, "site_title": self.site_title, **context}
        page_request = None
        if status != 500:  # a failing node may fail again building the full context
            try:
                context = {**self.each_context(request), **context}
                page_request = request
            except Exception:  # noqa: BLE001  (the plain page below still says what happened)
                page_request = None
        html = render_to_string("admin/kv_error.html", context, request=page_request)
        return HttpResponse(html, status=status)
