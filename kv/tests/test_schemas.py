"""The JSON Schema validators a node runs: RE2 patterns, local references, a metered check."""

import jsonschema._keywords
import jsonschema._legacy_keywords
import jsonschema._utils
import pytest

from kv.schemas import (
    _DIALECTS,
    MAX_PATTERN_SIZE,
    SchemaUnsafe,
    StepsExceeded,
    pattern_compile,
    schema_inspect,
    stored_validator,
    value_errors,
)

DIALECTS = sorted(_DIALECTS)


def errors(schema, value, steps=100_000):
    return value_errors(schema_inspect(schema), value, steps=steps)


class _NoPythonRe:
    """Stands in for the `re` module inside jsonschema: any use fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"jsonschema used Python's re.{name}")


@pytest.fixture
def no_python_re(monkeypatch):
    for module in (jsonschema._keywords, jsonschema._utils, jsonschema._legacy_keywords):
        monkeypatch.setattr(module, "re", _NoPythonRe())


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_dialect_matches_with_pythons_re(no_python_re, dialect):
    schema = {
        "$schema": dialect,
        "type": "object",
        "properties": {"s": {"pattern": "^a+$"}, "kids": {"items": {"$ref": "#"}}},
        "patternProperties": {"^n_": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": "^[a-z_0-9]+$"},  # not a keyword of draft 4
    }
    validator = schema_inspect(schema)
    good = {"s": "aaa", "n_1": 1, "other": "x", "kids": [{"s": "a"}]}
    assert value_errors(validator, good, steps=10_000) is None
    bad_values = [{"s": "b"}, {"n_1": "x"}, {"other": 1}, {"kids": [{"s": "b"}]}]
    if "draft-04" not in dialect:
        bad_values.append({"Upper": "x"})
    for bad in bad_values:
        assert value_errors(validator, bad, steps=10_000) is not None, bad


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_uses_the_safe_keywords(dialect):
    safe, _checker = _DIALECTS[dialect]
    for keyword in ("pattern", "patternProperties", "additionalProperties", "uniqueItems"):
        assert safe.VALIDATORS[keyword].__module__ == "kv.schemas", keyword
    assert all(k.__module__ == "kv.schemas" for k in safe.VALIDATORS.values())


def test_ecma_unicode_escapes_are_read_as_re2_escapes():
    assert errors({"pattern": "^\\u00e9+$"}, "éé") is None
    assert errors({"pattern": "^\\u00e9+$"}, "e") is not None
    # An escaped backslash followed by "u0041" is that text, not an escape.
    assert errors({"pattern": "^\\\\u0041$"}, "\\u0041") is None
    assert errors({"pattern": "^\\\\u0041$"}, "A") is not None


def test_dollar_matches_only_at_the_end_as_in_ecma_262():
    assert errors({"pattern": "^a$"}, "a\n") is not None


def test_a_pattern_too_large_is_refused():
    with pytest.raises(SchemaUnsafe, match="too large"):
        pattern_compile("^[a-q][^u-z]{1000}x$" * 2)
    assert pattern_compile("^.{0,1000}$").size <= MAX_PATTERN_SIZE


def test_unevaluated_properties_with_pattern_properties_is_refused():
    with pytest.raises(SchemaUnsafe, match="unevaluatedProperties") as info:
        schema_inspect(
            {"patternProperties": {"^a": {}}, "$defs": {"x": {"unevaluatedProperties": False}}}
        )
    assert info.value.path == "$['$defs'].x"
    assert errors({"properties": {"a": {}}, "unevaluatedProperties": False}, {"b": 1})


def test_a_check_past_its_steps_stops():
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    validator = schema_inspect(schema)
    assert value_errors(validator, list(range(100)), steps=1_000) is None
    with pytest.raises(StepsExceeded):
        value_errors(validator, list(range(1_000)), steps=1_000)


def test_pattern_searches_are_charged_by_length_and_size():
    validator = schema_inspect({"pattern": "^(a|b|c|d){1,900}$"})
    assert value_errors(validator, "a" * 100, steps=10_000) is None
    with pytest.raises(StepsExceeded):
        value_errors(validator, "a" * 100_000, steps=10_000)


def test_a_reference_loop_is_named():
    with pytest.raises(SchemaUnsafe, match="without end"):
        schema_inspect({"anyOf": [{"$ref": "#"}]})


def test_stored_schemas_that_break_the_rules_stay_refused():
    remote = {"$ref": "http://127.0.0.1:9/s.json"}
    refusals = []
    for _ in range(2):
        with pytest.raises(SchemaUnsafe, match="not local") as info:
            stored_validator(remote)
        refusals.append(info.value)
    assert refusals[0] is not refusals[1]  # raised anew: no traceback piles up on one
    assert refusals[0].path == refusals[1].path == "$['$ref']"
    assert value_errors(stored_validator({"type": "integer"}), 1, steps=100) is None


def test_validators_run_only_with_a_meter():
    validator = schema_inspect({"type": "integer"})
    with pytest.raises(RuntimeError):
        list(validator.iter_errors(1))
