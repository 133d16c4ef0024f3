"""The admin of accounts: users and groups (Django's admins; groups show and edit their members)
and API tokens, created through accounts.services (the secret is shown once) and revoked, never
deleted; and the admin's login, throttled like the API's."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import quote
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.html import format_html
from rest_framework.exceptions import AuthenticationFailed, Throttled

from kv.keys import prefix_validate
from kvsite.admin_site import admin_time
from kvsite.exceptions import KvsError

from . import services
from .admin_access import ScopedAdmin, admin_credential, admin_grants
from .models import ApiToken, User
from .permissions import Credential
from .scopes import ALL, SCOPES

REVOKE_PERMISSION = "accounts.change_apitoken"
TOKENS_CREATE, TOKENS_REVOKE = "admin:tokens:create", "admin:tokens:revoke"


def scopes_for(kind: str) -> dict[str, str]:
    """The admin actions on users or groups and the API scopes that allow them."""
    return {
        "view": f"admin:{kind}:read",
        "add": f"admin:{kind}:create",
        "change": f"admin:{kind}:update",
        "delete": f"admin:{kind}:delete",
    }


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form, checking passwords through the API's throttled path."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            try:
                self.user_cache = services.password_authenticate(
                    username=username, password=password, request=self.request
                )
            except Throttled as exc:
                raise ValidationError(str(exc.detail), code="throttled") from None
            except AuthenticationFailed:
                raise self.get_invalid_login_error() from None
            try:
                self.confirm_login_allowed(self.user_cache)
            except ValidationError as refusal:
                address = self.request.META.get("REMOTE_ADDR") if self.request else None
                reason = f"admin: {' '.join(refusal.messages)}"
                services.login_refused(username=username, address=address, reason=reason)
                raise
            services.login_succeeded(user=self.user_cache, via="admin")
        return self.cleaned_data


admin.site.login_form = AdminLoginForm


class TokenDisplay:
    """How a token's scopes and moments read, on its page, in the list and on its user's page."""

    @admin.display(description="Scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    @admin.display(description="Created", ordering="created_at")
    def created(self, token: ApiToken) -> str:
        return admin_time(token.created_at)

    @admin.display(description="Expires", ordering="expires_at")
    def expires(self, token: ApiToken) -> str:
        return admin_time(token.expires_at) or "never"

    @admin.display(description="Revoked", ordering="revoked_at")
    def revoked(self, token: ApiToken) -> str:
        return admin_time(token.revoked_at) or "—"


# --- users and groups ----------------------------------------------------------------------------


class TokenInline(TokenDisplay, admin.TabularInline):
    """A user's tokens, read-only (create and revoke them on the tokens page)."""

    model = ApiToken
    fields = ("id", "name", "scope_list", "prefix", "created", "expires", "revoked")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "API tokens"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def is_last_superuser(user: User) -> bool:
    """Whether `user` is the only active superuser."""
    if user.pk is None or not (user.is_superuser and user.is_active):
        return False
    others = User.objects.filter(is_superuser=True, is_active=True).exclude(pk=user.pk)
    return not others.exists()


class KvUserChangeForm(UserChangeForm):
    """Django's user form, refusing to leave the node without an active superuser (as the API's
    user services do)."""

    def clean(self):
        data = super().clean()
        stored = User.objects.filter(pk=self.instance.pk).first()
        demoted = not data.get("is_superuser", True) or not data.get("is_active", True)
        if stored is not None and demoted and is_last_superuser(stored):
            raise forms.ValidationError(
                f"{stored.username} is the last active superuser: make another one first."
            )
        return data


STAFF_HELP = (
    "Staff may log in to this admin and get there what their own login could do through the API: "
    "browse, add, change and delete keys as the keys' ACLs allow, and read schemas and the cluster "
    "page. Superusers may do everything."
)


@admin.register(User)
class KvUserAdmin(ScopedAdmin, UserAdmin):
    """Users, with the same rules as the users API: its scopes, and only a superuser changes or
    makes a superuser. No Django permission pickers: access is scopes and ACLs."""

    form = KvUserChangeForm
    action_scopes = scopes_for("users")
    list_display = ("username", "email", "group_names", "is_staff", "is_superuser", "is_active")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    filter_horizontal = ("groups",)
    readonly_fields = ("last_login_at", "date_joined_at")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        (
            "Access",
            {
                "fields": ("is_active", "is_staff", "is_superuser", "groups"),
                "description": STAFF_HELP,
            },
        ),
        ("Important dates", {"fields": ("last_login_at", "date_joined_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_inlines(self, request, obj):
        return [TokenInline] if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if request.user.is_superuser else (*fields, "is_superuser")

    def has_change_permission(self, request, obj=None):
        """Only superusers change superusers (the API's rule too)."""
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        """Never the last active superuser (the bulk delete action checks each user too), and
        superusers only by superusers."""
        if obj is not None and is_last_superuser(obj):
            return False
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Last login")
    def last_login_at(self, user: User) -> str:
        return admin_time(user.last_login) or "never"

    @admin.display(description="Date joined")
    def date_joined_at(self, user: User) -> str:
        return admin_time(user.date_joined)

    @admin.display(description="Groups")
    def group_names(self, user: User) -> str:
        return ", ".join(sorted(group.name for group in user.groups.all()))


class MembersWidget(FilteredSelectMultiple):
    """The two-list picker, wrapped as the admin wraps its own many-to-many widgets (its script
    lays the lists out inside this wrapper)."""

    def render(self, name, value, attrs=None, renderer=None):
        picker = super().render(name, value, attrs, renderer)
        return format_html('<div class="related-widget-wrapper">{}</div>', picker)


class GroupForm(forms.ModelForm):
    """A group with its members, editable here as well as on each user's page."""

    members = forms.ModelMultipleChoiceField(
        queryset=User.objects.order_by("username"),
        required=False,
        widget=MembersWidget("members", is_stacked=False),
    )

    class Meta:
        model = Group
        fields = ("name", "members")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["members"] = list(self.instance.user_set.values_list("pk", flat=True))


if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class KvGroupAdmin(ScopedAdmin, GroupAdmin):
    """Groups and their members (access comes from the keys' modes and ACL rules, not from
    Django permissions, so there is no permission picker)."""

    form = GroupForm
    action_scopes = scopes_for("groups")
    fields = ("name", "members")
    filter_horizontal = ()
    list_display = ("name", "member_count")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(kv_members=Count("user", distinct=True))

    @admin.display(description="Members", ordering="kv_members")
    def member_count(self, group: Group) -> int:
        return group.kv_members

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        members = [user.username for user in form.cleaned_data["members"]]
        services.group_update(group=form.instance, members=members)


# --- API tokens ----------------------------------------------------------------------------------


class TokenCreateForm(forms.ModelForm):
    """A new token, issued by accounts.services.token_create while the form validates."""

    credential: Credential | None = None  # set per request by the admin
    issued: services.IssuedToken | None = None

    scopes = forms.MultipleChoiceField(
        choices=[(ALL, "* (every scope)")] + [(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple(attrs={"class": "kv-scopes"}),
        help_text="What the token may do at all; the keys' ACLs still apply.",
    )
    prefix = forms.CharField(
        required=False,
        max_length=1024,
        widget=forms.TextInput(attrs={"class": "kv-mono vTextField"}),
        help_text="Confine the token to keys and topics under this prefix, e.g. app/. "
        "Empty: no confinement.",
    )
    expires_in = forms.IntegerField(
        label="Expires in (seconds)",
        required=False,
        min_value=1,
        help_text="E.g. 3600 for an hour, 86400 for a day. Empty: never expires.",
    )

    class Meta:
        model = ApiToken
        fields = ("user", "name", "scopes", "prefix")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        credential = self.credential
        if credential is not None and not credential.user.is_superuser:
            # Staff who are not superusers issue tokens for themselves only.
            self.fields["user"].queryset = User.objects.filter(pk=credential.user.pk)
            self.fields["user"].initial = credential.user.pk

    def clean_prefix(self) -> str | None:
        raw = self.cleaned_data["prefix"]
        try:
            return prefix_validate(raw) or None
        except KvsError as exc:
            raise forms.ValidationError(exc.detail) from None

    def _post_clean(self):
        if self._errors:
            return
        data = self.cleaned_data
        try:
            self.issued = services.token_create(
                user=data["user"],
                scopes=data["scopes"],
                name=data["name"],
                prefix=data["prefix"],
                expires_in=data["expires_in"],
                credential=self.credential,
            )
        except KvsError as exc:
            self.add_error(None, exc.detail)
        else:
            self.instance = self.issued.token


class TokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return (("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired"))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        not_revoked = queryset.filter(revoked_at__isnull=True)
        if self.value() == "expired":
            return not_revoked.filter(expires_at__lte=now)
        if self.value() == "active":
            return not_revoked.exclude(expires_at__lte=now)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(TokenDisplay, ScopedAdmin, admin.ModelAdmin):
    """Tokens are created (the secret shown once) and revoked; never edited or deleted. The secret
    hash is never shown. Listing and creating need admin:tokens:create, as on the API."""

    action_scopes = {"view": TOKENS_CREATE, "add": TOKENS_CREATE}
    add_form = TokenCreateForm
    list_display = (
        "id",
        "user",
        "name",
        "scope_list",
        "prefix",
        "created",
        "expires",
        "revoked",
        "active",
    )
    list_filter = (TokenStatusFilter,)
    search_fields = ("id", "name", "user__username")
    ordering = ("-created_at",)
    list_select_related = ("user",)
    empty_value_display = "—"
    actions = ("revoke_tokens",)
    add_fieldsets = ((None, {"fields": ("user", "name", "scopes", "prefix", "expires_in")}),)
    view_fields = ("id", "user", "name", "scope_list", "prefix", "created", "expires")
    view_fieldsets = (
        (None, {"fields": view_fields}),
        ("Status", {"fields": ("active", "revoked")}),
    )

    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        if request.user.is_superuser:
            return tokens
        return tokens.filter(user=request.user)

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.view_fieldsets

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else (*self.view_fields, "active", "revoked")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, **kwargs)
        form.credential = admin_credential(request)  # a fresh class per request: safe to set
        return form

    def has_change_permission(self, request, obj=None):
        return False  # a token's page is read-only: revoke it and create another

    def has_delete_permission(self, request, obj=None):
        return False  # revoked tokens stay, for the record

    def has_revoke_permission(self, request) -> bool:
        return admin_grants(request, TOKENS_REVOKE) or request.user.has_perm(REVOKE_PERMISSION)

    @admin.display(description="Active", boolean=True)
    def active(self, token: ApiToken) -> bool:
        return token.is_active()

    def save_model(self, request, obj, form, change):
        """Nothing left to do: the form issued the token while validating."""
        request._kv_issued = form.issued

    def response_add(self, request, obj, post_url_continue=None):
        issued = getattr(request, "_kv_issued", None)
        if issued is not None:
            self.message_user(
                request,
                format_html(
                    "Token <code>{}</code> created. Its secret is "
                    '<code class="kv-secret">{}</code> — copy it now; it is not stored and will '
                    "not be shown again.",
                    issued.token.pk,
                    issued.secret,
                ),
                messages.SUCCESS,
            )
        return redirect("admin:accounts_apitoken_change", quote(obj.pk))  # ids hold "_"

    def add_view(self, request, form_url="", extra_context=None):
        # Every save shows the new token's page, where its secret is: no "add another".
        context = {"show_save_and_add_another": False, "show_save_and_continue": False}
        context.update(extra_context or {})
        return super().add_view(request, form_url, extra_context=context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = {"kv_can_revoke": self.has_revoke_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_tokens(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            services.token_revoke(token_id=token.pk)
            self.log_change(request, token, "Revoked.")
            revoked += 1
        self.message_user(
            request,
            f"Revoked {revoked} token(s); they stop working at once, on every node within "
            "about a second.",
            messages.SUCCESS,
        )
