"""Admin forms for entries, ACL rules and schemas.

Each form parses what a person typed, then writes through the same service as the API (in
`_post_clean`, inside a savepoint) and shows any service error next to the field it concerns, so a
refused write is a form error, never a half-done change or an error page.
"""

import json
import math
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.forms.renderers import TemplatesSetting

from kvsite.exceptions import Conflict, KvsError, TooLarge
from kvsite.parsers import json_parse

from . import services
from .acl import CLASSES, PERMS, Caller, caller_may_set_meta, mode_bit, mode_format, mode_parse
from .api.serializers import value_canonical
from .hlc import wall_ms
from .keys import InvalidKey, key_validate, prefix_validate, ttl_parse
from .models import AclRule, Entry, PrefixSchema
from .policy import SchemaViolation, acl_rule_put, schema_put
from .services import CAS_ABSENT, PERM_NAMES

CREATE_BITS = sum(mode_bit(who, "c") for who in CLASSES)
CREATE_FIXED = (
    "Creating keys is decided by the ACL rule of the key's prefix (its c column), not by an "
    "existing key's mode: these boxes are kept as they are."
)
JSON_ATTRS = {"class": "kv-json", "rows": 12, "spellcheck": "false", "autocapitalize": "off"}
TTL_HELP = "Seconds, or a number with a unit: 90s, 5m, 2h, 1d."


def json_pretty(text: str | None) -> str:
    """Stored compact JSON text as indented JSON for editing (big integers stay exact)."""
    if text is None:
        return ""
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False)


# --- the mode grid -------------------------------------------------------------------------------


class ModeGridWidget(forms.Widget):
    """Twelve checkboxes, rows owner/group/others by columns c d w r, and the 12-letter preview.

    Every box is named like the field and carries its bit as value, next to a hidden "0", so the
    submitted list sums to the mode; a form that omits the field entirely submits nothing.
    """

    template_name = "admin/kv/widgets/mode_grid.html"
    fixed: frozenset[str] = frozenset()  # columns shown but not editable (e.g. "c")
    fixed_note = ""

    class Media:
        js = ("kvsite/mode-grid.js",)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        mode = value if isinstance(value, int) else 0
        base_id = context["widget"]["attrs"].get("id") or f"id_{name}"
        context["widget"].update(
            mode=mode,
            mode_string=mode_format(mode),
            fixed_note=self.fixed_note if self.fixed else "",
            columns=[
                {
                    "letter": perm,
                    "name": PERM_NAMES[perm],
                    "fixed": perm in self.fixed,
                    "title": self.fixed_note if perm in self.fixed else PERM_NAMES[perm],
                }
                for perm in PERMS
            ],
            rows=[
                {
                    "who": who,
                    "cells": [
                        {
                            "id": f"{base_id}_{who}_{perm}",
                            "bit": mode_bit(who, perm),
                            "letter": perm,
                            "label": f"{who} may {PERM_NAMES[perm]}",
                            "checked": bool(mode & mode_bit(who, perm)),
                            "fixed": perm in self.fixed,
                            "title": self.fixed_note
                            if perm in self.fixed
                            else f"{who} may {PERM_NAMES[perm]}",
                        }
                        for perm in PERMS
                    ],
                }
                for who in CLASSES
            ],
        )
        return context

    def id_for_label(self, id_):
        return f"{id_}_owner_c" if id_ else id_

    def value_from_datadict(self, data, files, name):
        return data.getlist(name) if name in data else None

    def value_omitted_from_data(self, data, files, name):
        return name not in data

    def render(self, name, value, attrs=None, renderer=None):
        # The template lives in the project's templates/, which the default form renderer
        # does not search; the TEMPLATES setting does.
        return super().render(name, value, attrs, renderer=TemplatesSetting())


class ModeField(forms.Field):
    """A 12-bit mode from the grid's ticked bits."""

    widget = ModeGridWidget
    default_error_messages = {"invalid": "Tick boxes of the grid only."}
    _BITS = frozenset(mode_bit(who, perm) for who in CLASSES for perm in PERMS) | {0}

    def to_python(self, value: Any) -> int | None:
        if value is None or value == []:
            return None
        if isinstance(value, int):
            return value
        mode = 0
        for raw in value:
            try:
                bit = int(raw)
            except (TypeError, ValueError):
                raise forms.ValidationError(self.error_messages["invalid"], "invalid") from None
            if bit not in self._BITS:
                raise forms.ValidationError(self.error_messages["invalid"], "invalid")
            mode |= bit
        return mode

    def prepare_value(self, value: Any) -> int | None:
        if isinstance(value, list):  # re-shown after an error: what was ticked
            try:
                return self.to_python(value)
            except forms.ValidationError:
                return 0
        return value

    def has_changed(self, initial, data) -> bool:
        try:
            return self.to_python(data) != initial
        except forms.ValidationError:
            return True


# --- shared plumbing -----------------------------------------------------------------------------


class _Refused(Exception):
    """A service refused the write; `field` is where the form shows why (None: on top)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def refusal(exc: KvsError, field: str | None) -> _Refused:
    """Where the form shows a service error: `field` unless the error names its own."""
    if "mode" in exc.extra:  # the node refuses writes (read-only, syncing): no field's fault
        return _Refused(None, exc.detail)
    if isinstance(exc, InvalidKey):
        return _Refused("key" if field in ("key", "value") else field, exc.detail)
    if isinstance(exc, SchemaViolation | TooLarge):
        return _Refused("value", exc.detail)
    return _Refused(field, exc.detail)


def refused_on(field: str | None, call: Callable[..., Any], **kwargs) -> Any:
    """Call a service; turn its KvsError into a _Refused shown next to `field`."""
    try:
        return call(**kwargs)
    except KvsError as exc:
        raise refusal(exc, field) from exc


def principal_choices(names: list[str], current: str | None) -> list[tuple[str, str]]:
    """Select choices: none, then the given names (plus the current one if it is unknown here)."""
    if current and current not in names:
        names = [*names, current]
    return [("", "—")] + [(name, name) for name in names]


def principal_field(label: str, help_text: str) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label, required=False, coerce=str, empty_value=None, help_text=help_text
    )


class ServiceForm(forms.ModelForm):
    """A model form saved by `apply()` during validation, through a service.

    `apply` returns the saved object; a `_Refused` it raises becomes a form error and rolls back
    everything it wrote. The admin's own save then has nothing left to do.
    """

    def _post_clean(self):
        if self._errors:
            return
        try:
            with transaction.atomic():
                self.instance = self.apply()
        except _Refused as refused:
            field = refused.field if refused.field in self.fields else None
            self.add_error(field, refused.message)

    def apply(self):
        raise NotImplementedError

    def _principals_init(self, instance) -> None:
        users = get_user_model().objects.order_by("username")
        users = list(users.values_list("username", flat=True))
        groups = list(Group.objects.order_by("name").values_list("name", flat=True))
        if "owner" in self.fields:
            self.fields["owner"].choices = principal_choices(users, instance.owner)
        if "group" in self.fields:
            self.fields["group"].choices = principal_choices(groups, instance.group)


# --- entries -------------------------------------------------------------------------------------


class EntryForm(ServiceForm):
    """What adding and changing an entry share: the JSON value and the TTL."""

    caller: Caller | None = None  # set per request by the admin

    value = forms.CharField(
        label="Value (JSON)",
        strip=False,
        widget=forms.Textarea(attrs=JSON_ATTRS),
        help_text='Any JSON value: an object, an array, a string in quotes ("text"), a number, '
        "true, false or null.",
    )
    ttl = forms.CharField(
        label="TTL", required=False, help_text=f"{TTL_HELP} Empty: never expires."
    )

    class Meta:
        model = Entry
        fields = ("value",)

    def clean_value(self) -> str:
        text = self.cleaned_data["value"]
        if not text.strip():
            raise forms.ValidationError('Enter a JSON value, for example {} or "text".')
        try:
            return value_canonical(text.encode(), limit=settings.KVS_MAX_VALUE_BYTES)
        except KvsError as exc:
            raise forms.ValidationError(exc.detail.replace("The body", "The value", 1)) from None

    def clean_ttl(self) -> int | None:
        raw = self.cleaned_data["ttl"].strip()
        if not raw:
            return None
        try:
            return ttl_parse(raw)
        except KvsError as exc:
            raise forms.ValidationError(exc.detail) from None

    def _post_clean(self):
        if self.caller is None:
            raise ImproperlyConfigured(f"{type(self).__name__}.caller is not set.")
        super()._post_clean()


class EntryAddForm(EntryForm):
    """A new key: its owner is the creator; its group and mode come from the ACL rule."""

    key = forms.CharField(
        max_length=1024,
        widget=forms.TextInput(attrs={"class": "kv-mono vTextField", "autofocus": True}),
        help_text="A path like app/config/db: segments separated by /, not starting with _.",
    )

    class Meta(EntryForm.Meta):
        fields = ("key", "value")

    def clean_key(self) -> str:
        try:
            return key_validate(self.cleaned_data["key"])
        except KvsError as exc:
            raise forms.ValidationError(exc.detail) from None

    def apply(self) -> Entry:
        data = self.cleaned_data
        try:
            entry, _ = services.entry_put(
                key=data["key"],
                value=data["value"],
                caller=self.caller,
                ttl=data["ttl"],
                cas=CAS_ABSENT,
            )
        except Conflict:
            raise _Refused("key", "This key already exists: open it from the list.") from None
        except KvsError as exc:  # most likely the ACL rule forbids creating keys there
            raise refusal(exc, "key") from exc
        return entry


class EntryChangeForm(EntryForm):
    """A new value (entry_put, keeping the expiry unless told otherwise), then owner/group/mode
    (entry_meta_set) if they changed: one savepoint, so a refused half undoes the other."""

    clear_expiry = forms.BooleanField(
        label="Remove the expiry", required=False, help_text="The key will never expire."
    )
    owner = principal_field("Owner", "Gets the grid's first row.")
    group = principal_field("Group", "Its members get the second row.")
    mode = ModeField(
        label="Mode",
        help_text="Who may create (c), delete (d), write (w) and read (r) the key; "
        "everyone else gets the others row.",
    )
    expected_version = forms.UUIDField(widget=forms.HiddenInput, required=False)

    class Meta(EntryForm.Meta):
        fields = ("value", "owner", "group", "mode")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        pretty = json_pretty(self.instance.value)
        self.initial["value"] = pretty
        self.fields["value"].widget.attrs["rows"] = min(max(pretty.count("\n") + 2, 6), 24)
        self.initial["expected_version"] = self.instance.version
        self.fields["ttl"].help_text = f"{TTL_HELP} Empty: keep the current expiry."
        self._principals_init(self.instance)
        grid = self.fields["mode"].widget
        grid.fixed, grid.fixed_note = frozenset("c"), CREATE_FIXED
        if self.caller is not None and not caller_may_set_meta(
            self.caller, owner=self.instance.owner
        ):
            for name in ("owner", "group", "mode"):  # shown, not editable: the service would refuse
                self.fields[name].disabled = True

    def clean_mode(self) -> int:
        """The ticked bits, with the c column as the key has it (the grid shows it disabled)."""
        mode = self.cleaned_data["mode"]
        return (mode & ~CREATE_BITS) | (self.instance.mode & CREATE_BITS)

    def clean(self):
        data = super().clean()
        if data.get("ttl") is not None and data.get("clear_expiry"):
            self.add_error("clear_expiry", "Give a new TTL or remove the expiry, not both.")
        return data

    def apply(self) -> Entry:
        entry, data = self.instance, self.cleaned_data
        expected = data.get("expected_version")
        if expected is not None and expected != entry.version:
            raise _Refused(
                None,
                "Someone changed this entry since you opened it. Reload the page to see the "
                "current version, then make your change again.",
            )
        expiry_changes = data["ttl"] is not None or (
            data["clear_expiry"] and entry.expires_at is not None
        )
        if data["value"] != entry.value or expiry_changes:
            entry, _ = refused_on(
                "value",
                services.entry_put,
                key=entry.key,
                value=data["value"],
                caller=self.caller,
                ttl=self._ttl(entry, data),
                cas=str(entry.version),
            )
        meta = {f: data[f] for f in ("owner", "group", "mode") if data[f] != getattr(entry, f)}
        if meta:
            entry = refused_on(
                next(iter(meta)),
                services.entry_meta_set,
                key=entry.key,
                fields=set(meta),
                caller=self.caller,
                **meta,
            )
        return entry

    @staticmethod
    def _ttl(entry: Entry, data: dict) -> int | None:
        """The ttl to write: the new one, none if the expiry is removed, else what is left."""
        if data.get("ttl") is not None:
            return data["ttl"]
        if data.get("clear_expiry") or entry.expires_at is None:
            return None
        return max(1, math.ceil((entry.expires_at - wall_ms()) / 1000))


# --- ACL rules and schemas -----------------------------------------------------------------------


def _prefix_clean(raw: str) -> str:
    try:
        prefix = prefix_validate(raw)
    except KvsError as exc:
        raise forms.ValidationError(exc.detail) from None
    if not prefix:
        raise forms.ValidationError("Give a prefix, e.g. app/ or app/config.")
    return prefix


PREFIX_HELP = (
    "Covers every key starting with it (end it with / for a folder). The longest matching "
    "prefix wins."
)


class AclRuleForm(ServiceForm):
    """An ACL rule, saved with acl_rule_put."""

    prefix = forms.CharField(
        max_length=1024, widget=forms.TextInput(attrs={"class": "kv-mono"}), help_text=PREFIX_HELP
    )
    owner = principal_field("Owner", "The rule's first row applies to this user.")
    group = principal_field("Group", "New keys get this group; its members get the second row.")
    mode = ModeField(
        label="Mode",
        help_text="c says who may create keys under the prefix; new keys get this whole mode "
        "(and their creator as owner).",
    )

    class Meta:
        model = AclRule
        fields = ("prefix", "owner", "group", "mode")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None and self.initial.get("mode") is None:
            self.initial["mode"] = mode_parse(settings.KVS_DEFAULT_MODE)
        self._principals_init(self.instance)

    def clean_prefix(self) -> str:
        prefix = _prefix_clean(self.cleaned_data["prefix"])
        if AclRule.objects.filter(prefix=prefix).exists():
            raise forms.ValidationError("A rule for this prefix exists: change that one.")
        return prefix

    def apply(self) -> AclRule:
        data = self.cleaned_data
        rule, _ = refused_on(
            "prefix",
            acl_rule_put,
            prefix=data.get("prefix", self.instance.prefix),
            owner=data["owner"],
            group=data["group"],
            mode=data["mode"],
        )
        return rule


class PrefixSchemaForm(ServiceForm):
    """A JSON Schema for a prefix, saved with schema_put (which checks it is a valid schema)."""

    prefix = forms.CharField(
        max_length=1024, widget=forms.TextInput(attrs={"class": "kv-mono"}), help_text=PREFIX_HELP
    )
    schema = forms.CharField(
        label="JSON Schema",
        strip=False,
        widget=forms.Textarea(attrs={**JSON_ATTRS, "rows": 16}),
        help_text='Every value under the prefix must satisfy it, e.g. {"type": "object", '
        '"required": ["name"]}.',
    )

    class Meta:
        model = PrefixSchema
        fields = ("prefix", "schema")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            pretty = json.dumps(self.instance.schema, indent=2, ensure_ascii=False)
            self.initial["schema"] = pretty
            self.fields["schema"].widget.attrs["rows"] = min(max(pretty.count("\n") + 2, 6), 30)

    def clean_prefix(self) -> str:
        prefix = _prefix_clean(self.cleaned_data["prefix"])
        if PrefixSchema.objects.filter(prefix=prefix).exists():
            raise forms.ValidationError("A schema for this prefix exists: change that one.")
        return prefix

    def clean_schema(self):
        try:
            return json_parse(self.cleaned_data["schema"], what="schema")
        except KvsError as exc:
            raise forms.ValidationError(exc.detail) from None

    def apply(self) -> PrefixSchema:
        data = self.cleaned_data
        schema, _ = refused_on(
            "schema",
            schema_put,
            prefix=data.get("prefix", self.instance.prefix),
            schema=data["schema"],
        )
        return schema
