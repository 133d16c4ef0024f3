"""ACL rules and prefix schemas: saved and deleted through kv.policy, like the API's."""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.admin_access import ScopedAdmin
from accounts.scopes import ADMIN_ACL, READ
from kvsite.admin_site import admin_time
from kvsite.exceptions import NotFound

from ..acl import mode_format
from ..forms import AclRuleForm, PrefixSchemaForm
from ..models import AclRule, PrefixSchema
from ..policy import acl_rule_delete, schema_delete
from .access import admin_caller
from .entries import folder_url, under, visible_entries

GOVERNED_SHOWN = 50  # keys listed on a rule's page


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
        governs = ("Keys this rule governs", {"fields": ("governed",)})
        return ((None, {"fields": ("prefix", "updated")}), *self.fieldsets[1:], governs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("prefix", "updated", "governed")

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.kv_caller = admin_caller(request)
        return obj

    @admin.display(description="Keys")
    def governed(self, rule: AclRule) -> str:
        """The live keys (that you may read) whose longest covering rule is this one."""
        keys = rule_governed_keys(rule, visible_entries(rule.kv_caller))
        shown = keys[:GOVERNED_SHOWN]
        if not shown:
            return "No key is governed by this rule yet."
        links = format_html_join(
            ", ",
            '<a class="kv-mono" href="{}">{}</a>',
            ((reverse("admin:kv_entry_change", args=[pk]), key) for pk, key in shown),
        )
        more = len(keys) - len(shown)
        tail = format_html(' and <a href="{}">{} more</a>', folder_url(rule.prefix, flat=1), more)
        return format_html("{}{}", links, tail if more > 0 else "")

    @admin.display(description="Mode", ordering="mode")
    def mode_short(self, rule: AclRule) -> str:
        return format_html('<code class="kv-mode-string">{}</code>', mode_format(rule.mode))

    def delete_policy(self, *, prefix: str) -> None:
        acl_rule_delete(prefix=prefix)


def rule_governed_keys(rule: AclRule, entries) -> list[tuple]:
    """(pk, key) of `entries` under `rule`'s prefix and under no longer rule (at most 1000)."""
    governed = under(entries, rule.prefix)
    longer = AclRule.objects.filter(prefix__startswith=rule.prefix).exclude(prefix=rule.prefix)
    for inner in longer.values_list("prefix", flat=True):
        if inner.startswith(rule.prefix):  # LIKE ignores case on SQLite
            governed = governed.exclude(pk__in=under(entries, inner).values("pk"))
    return list(governed.order_by("key").values_list("pk", "key")[:1000])


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
