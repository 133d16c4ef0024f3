"""The cluster page of the admin: members, their status, how long since each was heard of, and
each alive node's Merkle root (asked for live, so diverging nodes stand out); superusers may
forget dead or departed members."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_access import ScopedAdmin, admin_grants
from accounts.scopes import READ
from kv.selectors import store_state
from kvsite.admin_site import admin_age, admin_time
from kvsite.exceptions import KvsError

from .antientropy import MERKLE_PATH
from .config import Config
from .gossip import gossip_forget
from .health import cluster_health, cluster_repair
from .models import Member
from .transport import HttpTransport, TransportError

ROOT_TIMEOUT_S = 1.0
ADMIN_CLUSTER = "admin:cluster"
_page = threading.local()


def _roots(members: list[Member]) -> dict[str, str]:
    """node_id → Merkle root, asked of every alive peer at once (this node's from its store)."""
    config = Config.from_settings()
    transport = HttpTransport(
        node_id=config.node_id, secret=config.secret, timeout_s=ROOT_TIMEOUT_S
    )

    local = store_state().merkle_root  # read here: the pool's threads only make HTTP calls

    def ask(member: Member) -> tuple[str, str]:
        if member.node_id == config.node_id:
            return member.node_id, local
        try:
            root = {"level": 0, "nodes": [0]}
            answer = transport.send(member.url, MERKLE_PATH, root, to=member.node_id)
            return member.node_id, answer["hashes"][0]
        except (TransportError, KeyError, IndexError):
            return member.node_id, "unreachable"

    alive = [m for m in members if m.status == Member.Status.ALIVE]
    if not alive:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(alive))) as pool:
        return dict(pool.map(ask, alive))


def moment_and_age(ms: int | None) -> str:
    """'2026-12-01 18:34:05 UTC (4.2 s ago)', or 'never'."""
    if not ms:
        return "never"
    return f"{admin_time(ms)} ({admin_age(ms)})"


@admin.register(Member)
class MemberAdmin(ScopedAdmin, admin.ModelAdmin):
    """Read-only view of the member table (for anyone who may read, as `GET
    /api/v1/cluster/members`); membership changes only through gossip, and through forgetting a
    dead or departed member (admin:cluster, as `DELETE /api/v1/cluster/members/{id}`)."""

    action_scopes = {"view": READ}
    actions = ["forget_members"]
    list_display = (
        "node_id",
        "url",
        "status_badge",
        "last_seen_age",
        "joined",
        "incarnation",
        "root",
    )
    ordering = ("node_id",)
    fields = (
        "node_id",
        "url",
        "status",
        "incarnation",
        "heartbeat",
        "joined",
        "last_seen_at",
        "status_changed",
    )
    readonly_fields = fields

    def get_urls(self):
        health = self.admin_site.admin_view(self.health_view)
        repair = self.admin_site.admin_view(self.repair_view)
        return [
            path("health/", health, name="cluster_member_health"),
            path("health/repair/", repair, name="cluster_member_repair"),
            *super().get_urls(),
        ]

    def health_view(self, request):
        """Replica health (as GET /api/v1/cluster/health), with a "repair now" per peer."""
        if not admin_grants(request, ADMIN_CLUSTER):
            raise PermissionDenied
        view = cluster_health()
        me = Config.from_settings().node_id
        for node in view["nodes"]:
            node["lags"] = sorted(node.get("replication", {}).items())
            last = node.get("last_antientropy")
            node["last_when"] = moment_and_age(last["at"]) if last else "never"
            node["repairable"] = node["node_id"] != me and node["status"] in ("alive", "suspect")
        context = {
            **self.admin_site.each_context(request),
            "title": "Replica health",
            "subtitle": "All roots agree" if view["converged"] else "Not converged",
            "opts": self.model._meta,
            "kv_health": view,
            "kv_repaired": request.session.pop("kv_repaired", None),
        }
        return TemplateResponse(request, "admin/cluster/health.html", context)

    def repair_view(self, request):
        """POST peer=<node id>: one anti-entropy round now, shown on the health page."""
        if request.method != "POST":
            return redirect("admin:cluster_member_health")
        if not admin_grants(request, ADMIN_CLUSTER):
            raise PermissionDenied
        try:
            found = cluster_repair(peer=request.POST.get("peer", ""))
        except KvsError as refused:
            self.message_user(request, f"Not repaired: {refused.detail}", messages.ERROR)
        else:
            request.session["kv_repaired"] = found
            self.message_user(
                request,
                f"Anti-entropy with {found['peer']}: {found['differing_buckets']} buckets "
                f"differed, pulled {found['pulled']}, pushed {found['pushed']}.",
                messages.SUCCESS,
            )
        return redirect(reverse("admin:cluster_member_health"))

    def changelist_view(self, request, extra_context=None):
        roots = _roots(list(Member.objects.all()))
        _page.roots = roots  # one admin instance serves every request: keep it per thread
        local = store_state().merkle_root
        agree = [r for r in roots.values() if r == local]
        extra_context = {
            **(extra_context or {}),
            "title": "Cluster members",
            "subtitle": f"{len(agree)} of {len(roots)} alive nodes share this node's data",
            "kv_can_see_health": admin_grants(request, ADMIN_CLUSTER),
        }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="status")
    def status_badge(self, member: Member) -> str:
        colours = {"alive": "#2e7d32", "suspect": "#ef6c00", "dead": "#c62828", "left": "#607d8b"}
        return format_html(
            '<strong style="color:{}">{}</strong>',
            colours.get(member.status, "#000"),
            member.status,
        )

    @admin.display(description="last seen")
    def last_seen_age(self, member: Member) -> str:
        if not member.last_seen:
            return "never"
        return format_html('<span title="{}">{}</span>', admin_time(member.last_seen),
                           admin_age(member.last_seen))  # fmt: skip

    @admin.display(description="joined", ordering="joined_at")
    def joined(self, member: Member) -> str:
        return admin_time(member.joined_at) if member.joined_at else "—"

    @admin.display(description="last seen")
    def last_seen_at(self, member: Member) -> str:
        return moment_and_age(member.last_seen)

    @admin.display(description="status changed")
    def status_changed(self, member: Member) -> str:
        return moment_and_age(member.status_changed_at)

    @admin.display(description="merkle root")
    def root(self, member: Member) -> str:
        value = getattr(_page, "roots", {}).get(member.node_id, "—")
        return format_html("<code>{}</code>", value[:16] + "…" if len(value) == 32 else value)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not admin_grants(request, ADMIN_CLUSTER):  # only superusers' sessions hold it
            actions.pop("forget_members", None)
        return actions

    @admin.action(description="Forget the selected dead or departed members, on every node")
    def forget_members(self, request, queryset):
        config = Config.from_settings()
        transport = HttpTransport.from_config(config)
        for node_id in queryset.values_list("node_id", flat=True):
            try:
                report = gossip_forget(transport, node_id, config=config)
            except KvsError as refused:  # unknown, alive, or this node
                self.message_user(request, str(refused), messages.WARNING)
                continue
            note = f"Forgot {node_id} on {', '.join(report.forgotten_by)}."
            if report.unreachable:
                note += f" Not reached (they forget it later): {', '.join(report.unreachable)}."
            self.message_user(request, note, messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
