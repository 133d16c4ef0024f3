"""The audit trail in the admin: read-only, filtered by actor, action, key prefix and time, with
a "Verify the chain" button. It needs `admin:audit` (superusers hold it) or the Django
permission `audit.view_auditevent` granted to a staff user."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from accounts.admin_access import ScopedAdmin
from accounts.scopes import ADMIN_AUDIT
from kvsite.admin_site import admin_time

from .models import AuditEvent
from .selectors import chain_verify


class TextFilter(admin.ListFilter):
    """A free-text filter in the sidebar: events whose `field` matches what is typed."""

    parameter_name = ""
    lookup = ""
    template = "admin/audit/text_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        if self.parameter_name in params:
            value = params.pop(self.parameter_name)
            self.used_parameters[self.parameter_name] = value[-1] if value else ""

    def value(self) -> str:
        return self.used_parameters.get(self.parameter_name, "")

    def has_output(self) -> bool:
        return True

    def expected_parameters(self):
        return [self.parameter_name]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.lookup: value}) if value else queryset

    def choices(self, changelist):
        others = changelist.get_filters_params()
        others.pop(self.parameter_name, None)
        hidden = [(name, values[-1]) for name, values in others.items() if values]
        yield {"name": self.parameter_name, "value": self.value(), "hidden": hidden}


class ActorFilter(TextFilter):
    title = "actor (username)"
    parameter_name = "actor"
    lookup = "actor"


class PrefixFilter(TextFilter):
    title = "key prefix (target)"
    parameter_name = "prefix"
    lookup = "target__startswith"


@admin.register(AuditEvent)
class AuditEventAdmin(ScopedAdmin, admin.ModelAdmin):
    action_scopes = {"view": ADMIN_AUDIT}
    list_display = ("seq", "when", "actor", "action", "target_code", "node", "remote",
                    "credential")  # fmt: skip
    list_filter = (ActorFilter, "action", PrefixFilter, ("at", admin.DateFieldListFilter))
    date_hierarchy = "at"
    ordering = ("-seq",)
    list_per_page = 100
    show_full_result_count = False  # counting a long trail on every page costs a scan
    fields = ("seq", "when", "actor", "action", "target", "node", "remote", "credential",
              "detail", "hash")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="at", ordering="at")
    def when(self, event: AuditEvent) -> str:
        return admin_time(event.at)

    @admin.display(description="target", ordering="target")
    def target_code(self, event: AuditEvent) -> str:
        return format_html('<span class="kv-mono">{}</span>', event.target)

    def get_urls(self):
        verify = self.admin_site.admin_view(require_POST(self.verify_view))
        return [path("verify/", verify, name="audit_auditevent_verify"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        context = {**(extra_context or {}), "kv_can_verify": self.has_view_permission(request)}
        return super().changelist_view(request, extra_context=context)

    def verify_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied("Verifying the audit trail needs admin:audit.")
        verdict = chain_verify()
        if verdict.ok:
            text = f"The chain holds: {verdict.checked} events verified"
            if verdict.anchor_seq:
                text += f" (from #{verdict.anchor_seq + 1}; older ones were pruned)"
            self.message_user(request, text + ".", messages.SUCCESS)
        else:
            text = (
                f"The chain is broken at event #{verdict.first_bad}: {verdict.reason} "
                f"({verdict.checked} events verified before it)."
            )
            self.message_user(request, text, messages.ERROR)
        return redirect("admin:audit_auditevent_changelist")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
