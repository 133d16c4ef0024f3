"""JSON Schema validators that cannot hurt the node.

People with `admin:acl` write schemas, every writer under a prefix makes the node run them, and
schemas also arrive from peers. So whatever a schema says:

- its patterns (`pattern`, the keys of `patternProperties`, `format: regex` in the metaschema
  check) are RE2 expressions, matched in time linear in the text: no backreferences, no
  lookaround; ECMA-262's `\\uXXXX` escape is read as RE2's `\\x{XXXX}`;
- its references stay inside it: `$ref`, `$dynamicRef` and `$recursiveRef` must be local (`#…`),
  no `$id` may take a metaschema's name, and validators resolve through a registry that never
  retrieves anything;
- `$schema` names draft 4, 6, 7, 2019-09 or 2020-12 (the default), and only at the root (in a
  subschema it would hand validation back to jsonschema's own classes);
- checking a value is metered: each keyword applied costs a step, a pattern search its worst
  case, and a check that runs past its budget, or goes round a reference loop, stops.

The validators are jsonschema's own, extended (`jsonschema.validators.extend`) with RE2
versions of the keywords that match patterns, a linear-time `uniqueItems`, a loop guard on the
reference keywords and the meter around every keyword.
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import orjson
import re2
from django.conf import settings
from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    FormatChecker,
)
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

# JSON nesting a stored schema may have (objects and arrays); deeper ones are refused before
# jsonschema recurses through them.
MAX_DEPTH = 64
# Compiled size (RE2 instructions) a pattern may have: `^.{0,1000}$` is about 9,000. Bounds the
# memory of a pattern and the worst case of a search, which RE2 keeps linear in the text but
# proportional to this size.
MAX_PATTERN_SIZE = 10_000
# Characters times pattern instructions one step of the meter pays for: RE2's slowest mode takes
# about 5 ns per character and instruction here, a keyword about 2.5 us.
PATTERN_WORK_PER_STEP = 500

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is an answer, not a log line
_RE2_OPTIONS.never_capture = True  # only "does it match": lets RE2 use its fastest engines
_RE2_OPTIONS.max_mem = 4 << 20
_SHORT = reprlib.Repr()  # values in messages: a long one is cut short
_SHORT.maxstring = _SHORT.maxother = 80


class SchemaUnsafe(Exception):
    """A schema this node will not run; `path` locates the culprit in the schema."""

    def __init__(self, message: str, path: str = "$"):
        super().__init__(message)
        self.path = path


class SchemaLoop(SchemaUnsafe):
    """A reference led back to where it started without moving into the value."""


class StepsExceeded(Exception):
    """Checking a value took more steps than its budget."""


# --- patterns ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    regex: object
    size: int

    def search(self, text: str) -> bool:
        """Whether the pattern matches somewhere in `text` (charged to the meter first)."""
        _spend(1 + len(text) * self.size // PATTERN_WORK_PER_STEP)
        return self.regex.search(text) is not None


def _ecma_escapes(pattern: str) -> str:
    r"""`pattern` with ECMA-262's `\uXXXX` written as RE2's `\x{XXXX}`; other escapes kept."""
    if "\\u" not in pattern:
        return pattern
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            digits = pattern[i + 2 : i + 6]
            if (
                pattern[i + 1] == "u"
                and len(digits) == 4
                and all(c in "0123456789abcdefABCDEF" for c in digits)
            ):
                out.append(f"\\x{{{digits}}}")
                i += 6
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def pattern_compile(pattern: str) -> Pattern:
    """The RE2 program of a schema pattern; raise SchemaUnsafe saying why it cannot run."""
    try:
        regex = re2.compile(_ecma_escapes(pattern), _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise SchemaUnsafe(
            f"the pattern {pattern!r} cannot be used: {reason} (patterns are RE2 expressions: "
            "no backreferences or lookaround)"
        ) from None
    size = regex._regexp.ProgramSize()  # the wrapper's RE2 object; no public accessor
    if size > MAX_PATTERN_SIZE:
        raise SchemaUnsafe(
            f"the pattern {pattern!r} is too large: {size} RE2 instructions, at most "
            f"{MAX_PATTERN_SIZE}"
        )
    return Pattern(regex=regex, size=size)


# --- the meter -----------------------------------------------------------------------------------


@dataclass
class _Meter:
    steps: int
    references: set[tuple[int, int]] = field(default_factory=set)


_meter: ContextVar[_Meter | None] = ContextVar("kvs_schema_meter", default=None)


def _spend(steps: int) -> None:
    meter = _meter.get()
    if meter is None:
        raise RuntimeError("Schema validators run only inside value_errors().")
    meter.steps -= steps
    if meter.steps < 0:
        raise StepsExceeded


@contextmanager
def _metered(steps: int) -> Iterator[None]:
    token = _meter.set(_Meter(steps=steps))
    try:
        yield
    finally:
        _meter.reset(token)


# --- keywords ------------------------------------------------------------------------------------


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not pattern_compile(pattern).search(instance):
        yield ValidationError(f"{_SHORT.repr(instance)} does not match {pattern!r}")


def _pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        compiled = pattern_compile(pattern)
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = [pattern_compile(p) for p in schema.get("patternProperties", {})]
    extras = [
        key
        for key in instance
        if key not in properties and not any(p.search(key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(_SHORT.repr(extra) for extra in sorted(extras))
        if patterns:
            regexes = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            verb = "does" if len(extras) == 1 else "do"
            yield ValidationError(f"{names} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({names} {verb} unexpected)"
            )


def _equality_key(value, counted: list[int]):
    """A hashable stand-in equal for JSON values that JSON Schema calls equal (1 == 1.0)."""
    counted[0] += 1
    if isinstance(value, bool):  # before int: true is not 1
        return ("b", value)
    if isinstance(value, list):
        return ("a", tuple(_equality_key(v, counted) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _equality_key(v, counted)) for k, v in value.items()))
    return ("v", value)  # null, numbers (1 and 1.0 hash alike), strings


def _unique_items(validator, unique, instance, schema):
    if not unique or not validator.is_type(instance, "array"):
        return
    counted = [0]
    keys = {_equality_key(item, counted) for item in instance}
    _spend(counted[0])
    if len(keys) < len(instance):
        yield ValidationError(f"{_SHORT.repr(instance)} has non-unique elements")


@contextmanager
def _following(ref: str, schema, instance) -> Iterator[None]:
    """Refuse to follow a reference back to the same subschema and value: an endless loop."""
    meter = _meter.get()
    if meter is None:
        raise RuntimeError("Schema validators run only inside value_errors().")
    here = (id(schema), id(instance))
    if here in meter.references:
        raise SchemaLoop(f"it refers to itself without end ({ref!r})")
    meter.references.add(here)
    try:
        yield
    finally:
        meter.references.discard(here)


def _guarded(keyword):
    def reference(validator, ref, instance, schema):
        with _following(ref, schema, instance):
            yield from keyword(validator, ref, instance, schema)

    return reference


def _counted(keyword):
    def counted(validator, value, instance, schema):
        _spend(1)
        return keyword(validator, value, instance, schema)

    return counted


_OVERRIDES = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")


def _regex_format(instance) -> bool:
    if isinstance(instance, str):
        try:
            pattern_compile(instance)
        except SchemaUnsafe:
            return False
    return True


def _safe(base: type[Validator]) -> tuple[type[Validator], FormatChecker]:
    """`base` with the keywords above, every keyword metered; and its metaschema's checker."""
    keywords = {}
    for name, keyword in base.VALIDATORS.items():
        keyword = _OVERRIDES.get(name, keyword)
        if name in _REFERENCES:
            keyword = _guarded(keyword)
        keywords[name] = _counted(keyword)
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.FORMAT_CHECKER.checkers)
    checker.checks("regex")(_regex_format)
    return extend(base, validators=keywords), checker


_DIALECTS = {
    base.ID_OF(base.META_SCHEMA).rstrip("#"): _safe(base)
    for base in (
        Draft4Validator,
        Draft6Validator,
        Draft7Validator,
        Draft201909Validator,
        Draft202012Validator,
    )
}
_DEFAULT_DIALECT = Draft202012Validator.ID_OF(Draft202012Validator.META_SCHEMA).rstrip("#")


def _refuse_retrieval(uri: str):
    raise NoSuchResource(ref=uri)


# Never fetches: a reference outside the schema is unresolvable, not a request to somewhere.
_REGISTRY = Registry(retrieve=_refuse_retrieval)


# --- the schema document -------------------------------------------------------------------------


def _child_path(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _dialect(schema) -> str:
    if not isinstance(schema, dict) or "$schema" not in schema:
        return _DEFAULT_DIALECT
    name = schema["$schema"]
    if not isinstance(name, str) or name.rstrip("#") not in _DIALECTS:
        known = ", ".join(sorted(_DIALECTS))
        raise SchemaUnsafe(f"$schema {name!r} is not supported; give one of {known}", "$")
    return name.rstrip("#")


def _inspect(schema) -> None:
    """Raise SchemaUnsafe for the first thing in `schema` this node will not run.

    Every object in the document is looked at, not only the subschemas: a local reference can
    make any part of it a schema.
    """
    stack = [(schema, "$", 0)]
    unevaluated = patterned = None
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SchemaUnsafe(f"it nests deeper than {MAX_DEPTH} levels", path)
        if isinstance(node, list):
            stack.extend((v, _child_path(path, i), depth + 1) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for keyword in _REFERENCES:
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                raise SchemaUnsafe(
                    f"{keyword} {ref!r} is not local: references must stay in the schema "
                    "(start with '#')",
                    _child_path(path, keyword),
                )
        if "$schema" in node and node is not schema:
            raise SchemaUnsafe("$schema may only be given at the root of the schema", path)
        for keyword in ("$id", "id"):
            name = node.get(keyword)
            if isinstance(name, str) and "json-schema.org" in name.lower():
                raise SchemaUnsafe(
                    f"{keyword} {name!r} takes the name of a JSON Schema metaschema",
                    _child_path(path, keyword),
                )
        if isinstance(node.get("pattern"), str):
            _pattern_check(node["pattern"], _child_path(path, "pattern"))
        if isinstance(node.get("patternProperties"), dict):
            patterned = patterned or path
            for pattern in node["patternProperties"]:
                _pattern_check(pattern, _child_path(path, "patternProperties"))
        if "unevaluatedProperties" in node:
            unevaluated = unevaluated or path
        stack.extend((v, _child_path(path, k), depth + 1) for k, v in node.items())
    if unevaluated and patterned:
        # jsonschema matches patternProperties with Python's re while it works out which
        # properties were evaluated; refuse rather than run that.
        raise SchemaUnsafe(
            "unevaluatedProperties cannot be combined with patternProperties in one schema here",
            unevaluated,
        )


def _pattern_check(pattern: str, path: str) -> None:
    try:
        pattern_compile(pattern)
    except SchemaUnsafe as exc:
        exc.path = path
        raise


def _metaschema_check(schema, dialect: str) -> None:
    safe, checker = _DIALECTS[dialect]
    try:
        safe.check_schema(schema, format_checker=checker)
    except SchemaError as exc:
        raise SchemaUnsafe(exc.message, exc.json_path) from None
    except RecursionError:
        raise SchemaUnsafe("it nests too deeply to be checked") from None


def _build(schema) -> Validator:
    """A validator for a schema that passed `_inspect` and its metaschema."""
    safe, _checker = _DIALECTS[_dialect(schema)]
    if isinstance(schema, dict) and "$schema" in schema:
        # Keep it off the document: jsonschema would pick its own class for `$ref: "#"`.
        schema = {k: v for k, v in schema.items() if k != "$schema"}
    return safe(schema, registry=_REGISTRY)


def _json(schema, **options) -> bytes:
    try:
        return orjson.dumps(schema, **options)
    except TypeError:  # orjson stops at 255 levels
        raise SchemaUnsafe(f"it nests deeper than {MAX_DEPTH} levels") from None


def schema_inspect(schema) -> Validator:
    """A validator for `schema`; raise SchemaUnsafe if this node will not run it.

    Besides the rules above this tries the schema on a few values, so that a schema that refers
    to itself without end, or to a part of itself that is not there, is refused at once.
    """
    dialect = _dialect(schema)
    _inspect(schema)
    _metaschema_check(schema, dialect)
    validator = _build(schema)
    for trial in (None, {}, []):
        try:
            value_errors(validator, trial, steps=10_000)
        except StepsExceeded:
            pass
    return validator


def schema_check(schema) -> None:
    """Raise SchemaUnsafe unless `schema` may be stored: it runs here and is not too large."""
    size = len(_json(schema))
    if size > settings.KVS_SCHEMA_MAX_BYTES:
        raise SchemaUnsafe(
            f"it takes {size} bytes of JSON, more than KVS_SCHEMA_MAX_BYTES "
            f"({settings.KVS_SCHEMA_MAX_BYTES})"
        )
    schema_inspect(schema)


@functools.lru_cache(maxsize=256)
def _validator_of(schema_json: str) -> Validator | tuple[str, str]:
    try:
        return schema_inspect(orjson.loads(schema_json))
    except SchemaUnsafe as exc:
        # A stored schema that breaks the rules stays refused: check it once, and keep only
        # what is needed to refuse it again (an exception raised anew keeps no old traceback).
        return str(exc), exc.path


def stored_validator(schema) -> Validator:
    """The validator of a stored schema (cached); raise SchemaUnsafe if it cannot be run.

    Stored schemas passed `schema_inspect` here, but a peer running older code may have
    accepted one that does not.
    """
    found = _validator_of(_json(schema, option=orjson.OPT_SORT_KEYS).decode())
    if isinstance(found, tuple):
        raise SchemaUnsafe(*found)
    return found


def value_errors(validator: Validator, document, *, steps: int) -> ValidationError | None:
    """The most relevant way `document` breaks the schema, or None.

    Raise StepsExceeded past `steps`, SchemaUnsafe when the schema cannot be followed (a loop, a
    reference to nowhere).
    """
    with _metered(steps):
        try:
            return best_match(validator.iter_errors(document))
        except Unresolvable as exc:
            ref = f"#{exc.ref}" if exc.ref.startswith("/") else exc.ref  # a JSON pointer
            raise SchemaUnsafe(f"it refers to {ref!r}, which is not in it") from None
        except RecursionError:
            raise StepsExceeded from None
