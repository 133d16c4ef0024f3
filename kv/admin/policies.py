"""ACL rules and prefix schemas: saved and deleted through kv.policy, like the API's."""

import json

from django.contrib import admin
from django.utils.html import format_html

from accounts.admin_access import ScopedAdmin
from accounts.scopes import ADMIN_ACL, READ
from kvsite.admin_site import admin_time
from kvsite.exceptions import NotFound

from ..acl import mode_format
from ..forms import AclRuleForm, PrefixSchemaForm
from ..models import AclRule, PrefixSchema
from ..policy import acl_rule_delete, schema_delete


class PolicyAdmin(ScopedAdmin, admin.ModelAdmin):
    """What both share: the prefix is the identity (read-only once saved), saves happen in the
    form, deletes call `delete_policy`. Changing either needs `admin:acl`, as on the API."""

    action_scopes = {"view": ADMIN_ACL, "add": ADMIN_ACL, "change": ADMIN_ACL, "delete": ADMIN_ACL}

    ordering = ("prefix",)
    search_fields = ("prefix",)
    empty_value_display = "—"
    list_per_page = 100

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("prefix", "updated")

    def save_model(self, request, obj, form, change):
        """Nothing left to do: the form saved through kv.policy while validating."""

    def delete_model(self, request, obj):
        try:
            self.delete_policy(prefix=obj.prefix)
        except NotFound:
            pass  # deleted meanwhile: the goal is reached

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_policy(self, *, prefix: str) -> None:
        raise NotImplementedError

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, obj) -> str:
        return admin_time(obj.updated_at)

    @admin.display(description="Prefix", ordering="prefix")
    def prefix_code(self, obj) -> str:
        return format_html('<span class="kv-mono">{}</span>', obj.prefix)


@admin.register(AclRule)
class AclRuleAdmin(PolicyAdmin):
    form = AclRuleForm
    list_display = ("prefix_code", "owner", "group", "mode_short", "updated")
    list_display_links = ("prefix_code",)
    fieldsets = (
        (None, {"fields": ("prefix",)}),
        (
            "Who may create keys, and what new keys get",
            {
                "fields": ("owner", "group", "mode"),
                "description": "The c column says who may create keys under the prefix. A new "
                "key is owned by its creator and gets the rule's group and the whole mode.",
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets
        return ((None, {"fields": ("prefix", "updated")}), *self.fieldsets[1:])

    @admin.display(description="Mode", ordering="mode")
    def mode_short(self, rule: AclRule) -> str:
        return format_html('<code class="kv-mode-string">{}</code>', mode_format(rule.mode))

    def delete_policy(self, *, prefix: str) -> None:
        acl_rule_delete(prefix=prefix)


@admin.register(PrefixSchema)
class PrefixSchemaAdmin(PolicyAdmin):
    """Anyone who may read keys may read the schemas (as on the API); changing them is admin:acl."""

    form = PrefixSchemaForm
    action_scopes = {**PolicyAdmin.action_scopes, "view": READ}
    list_display = ("prefix_code", "schema_short", "updated")
    list_display_links = ("prefix_code",)

    def get_fieldsets(self, request, obj=None):
        first = ("prefix",) if obj is None else ("prefix", "updated")
        if obj is not None and not self.has_change_permission(request, obj):
            return ((None, {"fields": (*first, "schema_pretty")}),)
        return ((None, {"fields": (*first, "schema")}),)

    @admin.display(description="JSON Schema")
    def schema_pretty(self, schema: PrefixSchema) -> str:
        text = json.dumps(schema.schema, indent=2, ensure_ascii=False)
        return format_html('<pre class="kv-json">{}</pre>', text)

    @admin.display(description="Schema")
    def schema_short(self, schema: PrefixSchema) -> str:
        text = json.dumps(schema.schema, ensure_ascii=False)
        text = text if len(text) <= 80 else text[:79] + "…"
        return format_html('<code class="kv-preview">{}</code>', text)

    def delete_policy(self, *, prefix: str) -> None:
        schema_delete(prefix=prefix)
