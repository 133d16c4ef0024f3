"""Declared indexes in the admin: their state (building, ready, failed) and build figures.
Declaring and removing one goes through query.services, as on the API (`admin:acl`)."""

from django.contrib import admin, messages

from accounts.admin_access import ScopedAdmin
from accounts.scopes import ADMIN_ACL, READ
from kvsite.exceptions import KvsError, NotFound

from . import services
from .models import ValueIndex


@admin.register(ValueIndex)
class ValueIndexAdmin(ScopedAdmin, admin.ModelAdmin):
    action_scopes = {"view": READ, "add": ADMIN_ACL, "delete": ADMIN_ACL}
    list_display = ("prefix", "path", "state", "keys", "built_seconds", "name", "updated_at")
    list_filter = ("state",)
    search_fields = ("prefix", "path")
    ordering = ("prefix", "path")
    fields = ("prefix", "path", "name", "state", "keys", "built_seconds", "error", "updated_at")
    readonly_fields = ("name", "state", "keys", "built_seconds", "error", "updated_at")
    empty_value_display = "—"

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ("prefix", "path", *self.readonly_fields)

    def has_change_permission(self, request, obj=None):
        return False  # an index is declared or removed, never edited

    def save_model(self, request, obj, form, change):
        try:
            index, _ = services.index_put(prefix=obj.prefix, path=obj.path)
        except KvsError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return
        obj.pk, obj.name = index.pk, index.name

    def delete_model(self, request, obj):
        try:
            services.index_delete(prefix=obj.prefix, path=obj.path)
        except NotFound:
            pass  # removed meanwhile

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)
