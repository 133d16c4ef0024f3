"""The entry admin: a folder browser over the live keys; adds, changes and deletes go through
kv.services with the admin user's ACL, exactly as the API's writes do."""

import difflib
import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import actions
from django.contrib.admin.views.main import IS_POPUP_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet, Value
from django.db.models.functions import StrIndex, Substr
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from accounts.admin_access import ScopedAdmin, admin_credential, admin_grants
from accounts.models import User
from accounts.scopes import ADMIN_ACL, DELETE, READ, WRITE
from kvsite.admin_site import admin_time
from kvsite.exceptions import KvsError

from .. import selectors, services
from ..acl import Caller, caller_may, mode_format
from ..explain import acl_explain, login_credential
from ..forms import EntryAddForm, EntryChangeForm, json_pretty
from ..hlc import wall_ms
from ..keys import prefix_successor, prefix_validate
from ..models import Entry
from .access import admin_caller, entry_may_change, entry_may_delete, readable_by

FOLDER_PARAM = "prefix"  # the folder being browsed, e.g. app/config/
FLAT_PARAM = "flat"  # list every key below the folder, not only those directly in it
WHERE_PARAM = "where"  # a query on values (query.language), as JSON: the keys it matches
EXPLAIN_PARAM = "explain"  # the user the "who can do what" panel answers for
MAX_QUERY_MATCHES = 1000
MAX_FOLDERS = 500
PREVIEW_CHARS = 60
DIFF_CONTEXT = 3  # unchanged lines shown around each change of the history's diffs


def json_diff(older: str | None, newer: str | None, *, names: tuple[str, str]) -> list[dict]:
    """The unified diff of two versions' values pretty-printed (a deletion: no lines), as lines
    with a CSS kind (add, del, hunk, file or same); empty when the values print the same."""
    lines = difflib.unified_diff(
        json_pretty(older).splitlines(),
        json_pretty(newer).splitlines(),
        fromfile=names[0],
        tofile=names[1],
        lineterm="",
        n=DIFF_CONTEXT,
    )
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    out = []
    for number, line in enumerate(lines):
        kind = "file" if number < 2 else kinds.get(line[:1], "same")
        out.append({"kind": kind, "text": line})
    return out


def value_preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    if text is None:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def folder_from_request(request) -> tuple[str, str | None]:
    """The folder in the query string, or ('', why it is invalid)."""
    raw = request.GET.get(FOLDER_PARAM, "")
    try:
        return prefix_validate(raw), None
    except KvsError as exc:
        return "", exc.detail


def folder_crumbs(prefix: str) -> list[dict]:
    """The clickable segments of a folder: 'app/config/' -> app (app/), config (app/config/)."""
    crumbs, path = [], ""
    parts = prefix.split("/")
    for i, part in enumerate(parts):
        if not part:
            continue
        path += part if i == len(parts) - 1 else part + "/"
        crumbs.append({"name": part, "prefix": path, "url": folder_url(path)})
    return crumbs


def folder_url(prefix: str, **extra) -> str:
    query = {FOLDER_PARAM: prefix, **extra} if prefix else extra
    return reverse("admin:kv_entry_changelist") + (f"?{urlencode(query)}" if query else "")


def under(entries: QuerySet[Entry], prefix: str) -> QuerySet[Entry]:
    """The entries whose key starts with `prefix`, as a key range (LIKE ignores case on SQLite)."""
    if not prefix:
        return entries
    upper = prefix_successor(prefix)
    entries = entries.filter(key__gte=prefix)
    return entries.filter(key__lt=upper) if upper else entries


def _slash_after(prefix: str) -> StrIndex:
    """Position (1-based) of the first '/' after `prefix` in the key; 0 if there is none."""
    return StrIndex(Substr("key", len(prefix) + 1), Value("/"))


def directly_in(entries: QuerySet[Entry], prefix: str) -> QuerySet[Entry]:
    """The entries of the folder itself, not of its subfolders."""
    return under(entries, prefix).annotate(kv_slash=_slash_after(prefix)).filter(kv_slash=0)


def subfolders(entries: QuerySet[Entry], prefix: str, *, limit: int = MAX_FOLDERS) -> list[str]:
    """The folders directly below `prefix` that hold at least one of `entries` (e.g. 'app/db/')."""
    rows = (
        under(entries, prefix)
        .annotate(kv_slash=_slash_after(prefix))
        .filter(kv_slash__gt=0)
        .annotate(kv_folder=Substr("key", 1, F("kv_slash") + len(prefix)))
        .order_by("kv_folder")
        .values_list("kv_folder", flat=True)
        .distinct()
    )
    return list(rows[:limit])


def visible_entries(caller: Caller) -> QuerySet[Entry]:
    """Live entries `caller` may read (live_entries leaves out the cluster's reserved keys)."""
    return selectors.live_entries().filter(readable_by(caller))


def folder_watching(request, prefix: str) -> dict | None:
    """How many watches in the cluster follow keys of the folder (their prefix covers it or lies
    in it), and who (for those who may read users); None if presence cannot be read now."""
    import redis

    from cluster.transport import TransportError
    from kvsite.presence import watchers_cluster

    try:
        watchers = watchers_cluster(prefix=None)["watchers"]
    except (redis.RedisError, TransportError, OSError):
        return None
    following = [
        w
        for w in watchers
        if w.get("kind") == "watch"
        and isinstance(w.get("prefix"), str)
        and (prefix.startswith(w["prefix"]) or w["prefix"].startswith(prefix))
    ]
    names = None
    if admin_grants(request, "admin:users:read"):
        names = sorted({w.get("username") or "anonymous" for w in following})
    return {"count": len(following), "names": names}


def folder_query(request, prefix: str) -> tuple[list[str] | None, str | None, str | None]:
    """The keys under `prefix` that the query box's conditions match (None: no query), the index
    that served it, and why the query is refused (None: it is not). The box takes a list of
    conditions, or an object with `where` and `order_by`, as POST /api/v1/query does."""
    from query.language import query_parse
    from query.selectors import entries_query

    raw = request.GET.get(WHERE_PARAM, "").strip()
    if not raw:
        return None, None, None
    cached = getattr(request, "_kv_folder_query", None)
    if cached is not None:
        return cached
    try:
        body = json.loads(raw)
        body = {"where": body} if isinstance(body, list) else body
        if isinstance(body, dict):
            body = {**body, "prefix": prefix, "limit": MAX_QUERY_MATCHES, "keys": True}
        page = entries_query(query=query_parse(body), caller=admin_caller(request))
        request._kv_folder_query = ([e.key for e in page.items], page.index, None)
    except json.JSONDecodeError as exc:
        request._kv_folder_query = ([], None, f"The query is not JSON: {exc}")
    except KvsError as exc:
        request._kv_folder_query = ([], None, exc.detail)
    return request._kv_folder_query


class EntryChangeList(ChangeList):
    """The change list of one folder: its own keys, or with ?flat=1 or a search, all below it."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        for name in (FOLDER_PARAM, FLAT_PARAM, WHERE_PARAM):
            lookup_params.pop(name, None)
        return lookup_params

    def get_queryset(self, request, exclude_parameters=None):
        entries = super().get_queryset(request, exclude_parameters)
        prefix, _ = folder_from_request(request)
        matched, _, _ = folder_query(request, prefix)
        if matched is not None:
            return under(entries, prefix).filter(key__in=matched)
        if self.query or FLAT_PARAM in self.params:
            return under(entries, prefix)
        return directly_in(entries, prefix)


@admin.register(Entry)
class EntryAdmin(ScopedAdmin, admin.ModelAdmin):
    """Staff use it with their own scopes (read: browse; write: add and change; delete: delete),
    then each key's ACL decides: a key they may only read opens read-only."""

    action_scopes = {"view": READ, "add": WRITE, "change": WRITE, "delete": DELETE}
    form = EntryChangeForm
    add_form = EntryAddForm
    list_display = ("key_link", "value_short", "owner", "group", "mode_short", "updated", "expires")
    list_display_links = ("key_link",)
    search_fields = ("key",)
    search_help_text = "Finds keys containing this text, in this folder and below."
    ordering = ("key",)
    list_per_page = 100
    empty_value_display = "—"
    actions = ("delete_selected",)
    version_fields = ("version", "revision", "updated", "expires", "origin")
    version_lines = ("version", ("revision", "origin"), ("updated", "expires"))
    add_fieldsets = (
        (
            None,
            {
                "fields": ("key", "value", "ttl"),
                "description": "The new key is yours. Its group and mode come from the ACL rule "
                "covering it (else the default mode); you can change them on the next page.",
            },
        ),
    )

    # --- the list ------------------------------------------------------------------------------

    def get_queryset(self, request):
        return visible_entries(admin_caller(request))

    def get_changelist(self, request, **kwargs):
        return EntryChangeList

    def changelist_view(self, request, extra_context=None):
        prefix, problem = folder_from_request(request)
        if problem:
            self.message_user(request, f"Showing all keys: {problem}", messages.WARNING)
        flat = FLAT_PARAM in request.GET
        keep = {FLAT_PARAM: 1} if flat else {}
        matched, served_by, refused = folder_query(request, prefix)
        if refused:
            self.message_user(request, f"Query refused: {refused}", messages.ERROR)
        elif matched is not None and len(matched) == MAX_QUERY_MATCHES:
            self.message_user(
                request, f"Showing the first {MAX_QUERY_MATCHES} matches.", messages.WARNING
            )
        folders = subfolders(self.get_queryset(request), prefix)
        context = {
            "title": f"Entries in {prefix}" if prefix else "Entries",
            "kv_prefix": prefix,
            "kv_root_url": folder_url(""),
            "kv_crumbs": folder_crumbs(prefix),
            "kv_folders": [
                {"name": f[len(prefix) :], "url": folder_url(f, **keep)} for f in folders
            ],
            "kv_more_folders": len(folders) == MAX_FOLDERS,
            "kv_flat": flat,
            "kv_where": request.GET.get(WHERE_PARAM, ""),
            "kv_folder_url": folder_url(prefix),
            "kv_queried": matched is not None and not refused,
            "kv_query_index": served_by,
            "kv_toggle_url": folder_url(prefix) if flat else folder_url(prefix, **{FLAT_PARAM: 1}),
            "kv_watching": folder_watching(request, prefix),
            "kv_add_url": reverse("admin:kv_entry_add")
            + (f"?{urlencode({'key': prefix})}" if prefix else ""),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    @admin.display(description="Key", ordering="key")
    def key_link(self, entry: Entry) -> str:
        return format_html('<span class="kv-mono">{}</span>', entry.key)

    @admin.display(description="Value")
    def value_short(self, entry: Entry) -> str:
        return format_html('<code class="kv-preview">{}</code>', value_preview(entry.value))

    @admin.display(description="Value")
    def value_pretty(self, entry: Entry) -> str:
        return format_html('<pre class="kv-json">{}</pre>', json_pretty(entry.value))

    @admin.display(description="Mode", ordering="mode")
    def mode_short(self, entry: Entry) -> str:
        return format_html('<code class="kv-mode-string">{}</code>', mode_format(entry.mode))

    @admin.display(description="Updated", ordering="hlc")
    def updated(self, entry: Entry) -> str:
        return format_html('<span class="kv-nowrap">{}</span>', admin_time(entry.timestamp))

    @admin.display(description="Expires", ordering="expires_at")
    def expires(self, entry: Entry) -> str:
        if entry.expires_at is None:
            return self.get_empty_value_display()
        return format_html('<span class="kv-nowrap">{}</span>', admin_time(entry.expires_at))

    # --- what this user may do with one key: their scopes, then its ACL ------------------------

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or entry_may_change(admin_caller(request), obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or entry_may_delete(admin_caller(request), obj))

    # --- the form ------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        if not self.has_change_permission(request, obj):  # view only: no form fields at all
            return (
                (
                    None,
                    {
                        "fields": ("key", "value_pretty"),
                        "classes": ["kv-main"],
                        "description": "You may read this key, but its mode lets you change "
                        "nothing: ask its owner or an ACL admin.",
                    },
                ),
                ("Access", {"fields": (("owner", "group"), "mode_short"), "classes": ["kv-side"]}),
                ("Current version", {"fields": self.version_lines, "classes": ["kv-side"]}),
            )
        expiry = ("ttl", "clear_expiry") if obj.expires_at is not None else ("ttl",)
        main = ("key", "value", expiry, "expected_version")
        return (
            (None, {"fields": main, "classes": ["kv-main"]}),
            (
                "Access",
                {
                    "fields": (("owner", "group"), "mode"),
                    "classes": ["kv-side"],
                    "description": "Only the key's owner (or an ACL admin) may change these.",
                },
            ),
            ("Current version", {"fields": self.version_lines, "classes": ["kv-side"]}),
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("key", *self.version_fields)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, **kwargs)
        form.caller = admin_caller(request)  # a fresh class per request: safe to set
        return form

    def save_model(self, request, obj, form, change):
        """Nothing left to do: the form wrote through kv.services while validating."""

    def response_add(self, request, obj, post_url_continue=None):
        # Like Django's user admin: after adding, continue to the full form (owner, group, mode).
        if "_addanother" in request.POST or IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        request.POST = request.POST.copy()
        request.POST["_continue"] = 1
        super().response_add(request, obj, post_url_continue)  # its message; not its ?key=
        return redirect("admin:kv_entry_change", obj.pk)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            context["kv_history"] = self._history(request, obj)
            context["kv_compare"] = self._compare(request, context["kv_history"])
            folder, _, name = obj.key.rpartition("/")
            context["kv_crumbs"] = folder_crumbs(folder + "/")
            context["kv_name"] = name
            context["kv_explain"] = self._explain(request, obj)
            context["kv_revert_url"] = reverse("admin:kv_entry_revert", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _explain(self, request, obj: Entry) -> dict:
        """The "who can do what" panel: the four answers of kv.explain for the chosen user
        (yourself, or with admin:acl anyone), as the API's /acl/explain gives them."""
        others = admin_grants(request, ADMIN_ACL)
        chosen = request.GET.get(EXPLAIN_PARAM, "") if others else ""
        user = User.objects.filter(username=chosen).first() if chosen else None
        if user is None or user.pk == request.user.pk:
            credential, chosen = admin_credential(request), request.user.get_username()
        else:
            credential = login_credential(user)
        answer = acl_explain(key=obj.key, credential=credential)
        users = User.objects.order_by("username").values_list("username", flat=True)
        return {
            "param": EXPLAIN_PARAM,
            "chosen": chosen,
            "users": list(users[:500]) if others else None,
            "superuser": answer["superuser"],
            "decisions": [{"name": name, **d} for name, d in answer["decisions"].items()],
        }

    def get_urls(self):
        revert = self.admin_site.admin_view(require_POST(self.revert_view))
        return [
            path("<path:object_id>/revert/", revert, name="kv_entry_revert"),
            *super().get_urls(),
        ]

    def revert_view(self, request, object_id):
        """ "Revert to this version": write that version's value as the key's newest version,
        through kv.services as the API's POST /history/{key}/revert does (scope write, then the
        key's ACL, its schema, audit and replication)."""
        entry = get_object_or_404(Entry, pk=object_id)
        if not self.has_change_permission(request):  # the scope; the key's ACL: the service
            raise PermissionDenied
        version = request.POST.get("version", "")
        try:
            services.entry_revert(key=entry.key, version=version, caller=admin_caller(request))
        except KvsError as exc:
            self.message_user(request, f"Not reverted: {exc.detail}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Reverted {entry.key} to version {version[:8]}: it is the newest version now.",
                messages.SUCCESS,
            )
        return redirect(reverse("admin:kv_entry_change", args=[entry.pk]) + "#kv-history")

    def history_view(self, request, object_id, extra_context=None):
        """The key's own history is on its page: Django's log of admin edits would only repeat
        part of it."""
        return redirect(reverse("admin:kv_entry_change", args=[object_id]) + "#kv-history")

    def _compare(self, request, history: list[dict]) -> dict | None:
        """The diff of any two versions of the history the page shows, as `?compare=A&with=B`
        (A the older side); None when not asked or either is not one of them."""
        older, newer = request.GET.get("compare", ""), request.GET.get("with", "")
        by_id = {str(row["version"]): row for row in history}
        if older not in by_id or newer not in by_id:
            return None
        a, b = by_id[older], by_id[newer]
        names = (older[:8], newer[:8])
        return {"older": older, "newer": newer, "names": names,
                "diff": json_diff(a["value"], b["value"], names=names)}  # fmt: skip

    def _history(self, request, obj: Entry) -> list[dict]:
        caller = admin_caller(request)
        try:
            entry, previous = selectors.entry_history(key=obj.key, caller=caller)
        except KvsError:
            return []
        versions = [entry, *previous]
        live = entry.is_live(wall_ms())
        acl = {"owner": entry.owner, "group": entry.group, "mode": entry.mode}
        may_revert = self.has_change_permission(request) and (
            not live or caller_may(caller, "w", **acl)
        )  # else the service refuses anyway: no button that can only fail
        rows = []
        for index, version in enumerate(versions):
            before = versions[index + 1] if index + 1 < len(versions) else None
            short = str(version.version)[:8]
            rows.append(
                {
                    "current": version is entry,
                    "version": version.version,
                    "time": version.timestamp,
                    "deleted": version.deleted,
                    "value": version.value,
                    "preview": value_preview(version.value),
                    "full": json_pretty(version.value),
                    "mode": mode_format(version.mode),
                    "origin": version.origin,
                    "actor": version.actor,
                    "diff": None
                    if before is None
                    else json_diff(
                        before.value, version.value, names=(str(before.version)[:8], short)
                    ),
                    "revertable": may_revert and not version.deleted and version is not entry,
                }
            )
        return rows

    # --- deletes: tombstones through the service -----------------------------------------------

    def delete_model(self, request, obj):
        services.entry_delete(key=obj.key, caller=admin_caller(request))

    def delete_queryset(self, request, queryset):
        keys = list(queryset.values_list("key", flat=True))
        services.entry_delete_many(keys=keys, caller=admin_caller(request))

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except KvsError as exc:  # refused by the ACL: rolled back, nothing was logged
            self.message_user(request, f"Not deleted: {exc.detail}", messages.ERROR)
            return redirect("admin:kv_entry_change", object_id)

    @admin.action(description="Delete selected entries", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's confirmation page, then one all-or-nothing service call."""
        if not request.POST.get("post"):
            return actions.delete_selected(self, request, queryset)
        doomed = list(queryset)
        try:
            self.delete_queryset(request, queryset)
        except KvsError as exc:
            self.message_user(request, f"Nothing was deleted: {exc.detail}", messages.ERROR)
            return None
        self.log_deletions(request, doomed)
        self.message_user(
            request, f"Deleted {len(doomed)} entries (their history is kept).", messages.SUCCESS
        )
        return None
