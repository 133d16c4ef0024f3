"""This node's backups in the admin: the list (with a download link each), deleting, and a
"Back up now" button; all of it needs `admin:cluster`, as the API does."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from accounts.admin_access import ScopedAdmin, admin_grants
from kvsite.admin_site import admin_time

from . import services
from .models import Backup

ADMIN_CLUSTER = "admin:cluster"


@admin.register(Backup)
class BackupAdmin(ScopedAdmin, admin.ModelAdmin):
    action_scopes = {"view": ADMIN_CLUSTER, "delete": ADMIN_CLUSTER}
    list_display = ("id", "created", "size_mib", "keys", "revision", "merkle", "download")
    readonly_fields = ("id", "file", "created", "size", "keys", "sha256", "node", "revision",
                       "merkle_root", "download")  # fmt: skip
    fields = readonly_fields
    ordering = ("-created_at",)

    @admin.display(description="taken", ordering="created_at")
    def created(self, backup: Backup) -> str:
        return admin_time(backup.created_at)

    @admin.display(description="size")
    def size_mib(self, backup: Backup) -> str:
        return f"{backup.size / 1048576:.2f} MiB" if backup.size >= 104858 else f"{backup.size} B"

    @admin.display(description="merkle root")
    def merkle(self, backup: Backup) -> str:
        return format_html("<code>{}…</code>", backup.merkle_root[:16])

    @admin.display(description="file")
    def download(self, backup: Backup) -> str:
        return format_html('<a href="{}">download</a>', reverse("backup", args=[backup.id]))

    def get_urls(self):
        now = self.admin_site.admin_view(require_POST(self.backup_now_view))
        return [path("now/", now, name="backups_backup_now"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "kv_can_back_up": self._may(request)}
        return super().changelist_view(request, extra_context=extra_context)

    def backup_now_view(self, request):
        if not self._may(request):
            raise PermissionDenied("Taking a backup needs admin:cluster.")
        backup = services.backup_create()
        self.message_user(
            request, f"Backed up {backup.keys} keys as {backup.id}.", messages.SUCCESS
        )
        return redirect("admin:backups_backup_changelist")

    def _may(self, request) -> bool:
        return admin_grants(request, ADMIN_CLUSTER)

    def delete_model(self, request, obj: Backup) -> None:
        services.backup_delete(backup_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for backup_id in queryset.values_list("pk", flat=True):
            services.backup_delete(backup_id=backup_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
