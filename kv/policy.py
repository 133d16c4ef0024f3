"""Prefix policies: ACL rules (who may create keys, and how new keys start) and JSON Schemas.

Both are small tables read on every write, so each process keeps them in memory and re-reads
them at most every KVS_POLICY_CACHE_SECONDS. A change is seen at once by every process of the node
(web workers and the Celery worker): when it commits, the process that made it touches a stamp
file in the data directory, and every process re-reads the tables when the stamp has moved.
"""

import os
import time

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from kvsite.exceptions import InvalidInput, NotFound

from .acl import Caller, Decision, caller_decide, mode_parse
from .keys import prefix_validate
from .models import AclRule, PrefixSchema
from .schemas import SchemaUnsafe, StepsExceeded, schema_check, stored_validator, value_errors

_cache: dict[str, tuple[float, int, list]] = {}


class SchemaViolation(InvalidInput):
    code = "schema_violation"


class SchemaUnusable(SchemaViolation):
    """The stored schema of a prefix breaks the rules of kv.schemas (stored by older code, here or
    on a peer): writes under the prefix fail closed."""

    code = "schema_unusable"


class SchemaTooCostly(SchemaViolation):
    code = "schema_too_costly"


_stamp_paths: dict[object, str] = {}


def _stamp_path() -> str:
    """The stamp file of this node's data directory (joined once: it is checked on every write)."""
    data = settings.KVS_DATA_DIR
    path = _stamp_paths.get(data)
    if path is None:
        path = _stamp_paths[data] = os.path.join(data, "policy.stamp")
    return path


def _stamp() -> int:
    try:
        return os.stat(_stamp_path()).st_mtime_ns
    except FileNotFoundError:
        return 0


def _stamp_touch() -> None:
    path = _stamp_path()
    moved = max(time.time_ns(), _stamp() + 1)
    with open(path, "a"):
        pass
    os.utime(path, ns=(moved, moved))


def _cached(model) -> list:
    name = model.__name__
    deadline, stamp, rows = _cache.get(name, (0.0, 0, []))
    now, current = time.monotonic(), _stamp()
    if now >= deadline or current != stamp:
        rows = list(model.objects.order_by("-prefix"))
        _cache[name] = (now + settings.KVS_POLICY_CACHE_SECONDS, current, rows)
    return rows


def policy_cache_clear() -> None:
    """Forget the rules and schemas this process holds."""
    _cache.clear()


def _policy_changed(*args, **kwargs) -> None:
    """A rule or schema changed: forget it here now, and in every process of the node on commit."""
    _cache.clear()
    transaction.on_commit(_policy_committed)


def _policy_committed() -> None:
    _cache.clear()
    _stamp_touch()


for _model in (AclRule, PrefixSchema):
    post_save.connect(_policy_changed, sender=_model)
    post_delete.connect(_policy_changed, sender=_model)


# --- ACL rules -----------------------------------------------------------------------------------


def rule_for(key: str) -> AclRule | None:
    """The longest-prefix ACL rule covering `key`, if any."""
    best = None
    for rule in _cached(AclRule):
        if key.startswith(rule.prefix) and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    return best


def creation_decide(caller: Caller, key: str) -> tuple[Decision, str | None, int]:
    """Whether `caller` may create `key` and why, and the group and mode the new key gets.

    The longest matching rule decides with its `c` bits (against the rule's owner and group);
    with no rule any caller that got this far (scope `write`) may create, with KVS_DEFAULT_MODE.
    """
    rule = rule_for(key)
    if rule is None:
        note = "No ACL rule covers the key: any caller with the 'write' scope may create it."
        decision = Decision(True, "c", "no_rule", note=note)
        return decision, None, mode_parse(settings.KVS_DEFAULT_MODE)
    decision = caller_decide(
        caller, "c", owner=rule.owner, group=rule.group, mode=rule.mode, rule=rule.prefix
    )
    return decision, rule.group, rule.mode


def creation_policy(caller: Caller, key: str) -> tuple[bool, str | None, int]:
    """Whether `caller` may create `key`, and the group and mode the new key gets."""
    decision, group, mode = creation_decide(caller, key)
    return decision.allowed, group, mode


def acl_rule_put(
    *, prefix: str, owner: str | None, group: str | None, mode: int
) -> tuple[AclRule, bool]:
    """Create or replace the rule for `prefix`; return (rule, created)."""
    prefix_validate(prefix)
    if not prefix:
        raise InvalidInput("A rule needs a non-empty prefix.")
    rule, created = AclRule.objects.update_or_create(
        prefix=prefix, defaults={"owner": owner, "group": group, "mode": mode}
    )
    return rule, created


def acl_rule_delete(*, prefix: str) -> None:
    deleted, _ = AclRule.objects.filter(prefix=prefix).delete()
    if not deleted:
        raise NotFound(f"No ACL rule for prefix {prefix!r}.")


# --- Schemas -------------------------------------------------------------------------------------


def schemas_for(key: str) -> list[PrefixSchema]:
    """Every schema whose prefix covers `key`, longest prefix first."""
    return [s for s in _cached(PrefixSchema) if key.startswith(s.prefix)]


# Steps every value's check may take, whatever its size (see KVS_SCHEMA_STEPS_PER_KIB).
SCHEMA_BASE_STEPS = 10_000


def value_validate(*, key: str, value: str) -> None:
    """Raise SchemaViolation naming the failing path if `value` breaks a schema covering `key`.

    The checks of all covering schemas share one budget of steps, which grows with the value.
    """
    schemas = schemas_for(key)
    if not schemas:
        return
    document = orjson.loads(value)
    steps = SCHEMA_BASE_STEPS + settings.KVS_SCHEMA_STEPS_PER_KIB * len(value) // 1024
    for schema in schemas:
        try:
            error = value_errors(stored_validator(schema.schema), document, steps=steps)
        except SchemaUnsafe as exc:
            where = "" if exc.path == "$" else f" at {exc.path}"
            raise SchemaUnusable(
                f"The schema of prefix {schema.prefix!r} cannot be applied{where}: {exc}; "
                "replace it.",
                schema_prefix=schema.prefix,
            ) from None
        except StepsExceeded:
            raise SchemaTooCostly(
                f"Checking the value against the schema of prefix {schema.prefix!r} takes more "
                f"than the {steps} steps allowed for a value of its size.",
                schema_prefix=schema.prefix,
            ) from None
        if error is not None:
            path = error.json_path
            raise SchemaViolation(
                f"The value breaks the schema of prefix {schema.prefix!r} at {path}: "
                f"{error.message}",
                path=path,
                schema_prefix=schema.prefix,
            )


def schema_put(*, prefix: str, schema) -> tuple[PrefixSchema, bool]:
    """Create or replace the schema of `prefix`; raise InvalidInput unless it may be stored."""
    prefix_validate(prefix)
    if not prefix:
        raise InvalidInput("A schema needs a non-empty prefix.")
    if not isinstance(schema, dict | bool):
        raise InvalidInput("A JSON Schema is an object (or true/false).")
    try:
        orjson.dumps(schema)  # as schemas are replicated and compiled
    except TypeError:
        raise InvalidInput("A schema's integers must fit in 64 bits.") from None
    try:
        schema_check(schema)
    except SchemaUnsafe as exc:
        raise InvalidInput(f"Invalid JSON Schema at {exc.path}: {exc}.", path=exc.path) from None
    return PrefixSchema.objects.update_or_create(prefix=prefix, defaults={"schema": schema})


def schema_delete(*, prefix: str) -> None:
    deleted, _ = PrefixSchema.objects.filter(prefix=prefix).delete()
    if not deleted:
        raise NotFound(f"No schema for prefix {prefix!r}.")
