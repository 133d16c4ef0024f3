"""json_parse: the one set of rules for request bodies and websocket frames."""

import json
import time

import pytest

from kvsite.exceptions import InvalidJson
from kvsite.parsers import MAX_INT_DIGITS, json_depth, json_parse


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[{{{"', 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["\\"[[[", "\\\\", ["x\\\\\\"]"]]', 2),  # escaped quotes and backslashes
        ("[[], [[]], [[[]]]]", 4),
        (nested(100_000), 100_000),
    ],
)
def test_depth_counts_arrays_and_objects_but_not_brackets_in_strings(text, depth):
    assert json_depth(text.encode()) == depth


def test_a_value_at_the_limit_parses_and_one_level_more_is_refused(settings):
    settings.KVS_MAX_JSON_DEPTH = 10
    assert json_parse(nested(10)) == json.loads(nested(10))
    with pytest.raises(InvalidJson, match="11 levels deep; at most 10"):
        json_parse(nested(11))
    assert json_parse(json.dumps(["[" * 50])) == ["[" * 50]  # brackets in a string: depth 1


def test_a_body_nested_100000_deep_is_refused_at_once_without_recursion():
    started = time.perf_counter()
    for text in (nested(100_000), "{" * 100_000, nested(100_000, "12345678901234567890")):
        with pytest.raises(InvalidJson, match="100000 levels deep") as refused:
            json_parse(text)
        assert refused.value.code == "invalid_json"
    assert time.perf_counter() - started < 1.0


def test_the_exact_parser_obeys_the_same_depth_limit(settings):
    settings.KVS_MAX_JSON_DEPTH = 5
    long_int = "123456789012345678901234567890"  # beyond 64 bits: the standard library's parser
    assert json_parse(nested(5, long_int)) == json.loads(nested(5, long_int))
    with pytest.raises(InvalidJson, match="6 levels deep"):
        json_parse(nested(6, long_int))


def test_integers_beyond_64_bits_stay_exact():
    assert json_parse("[18446744073709551616, -9223372036854775809]") == [2**64, -(2**63) - 1]
    assert json_parse("9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)


def test_an_overlong_integer_is_refused_naming_the_limit_not_a_python_function():
    with pytest.raises(InvalidJson) as refused:
        json_parse("9" * 5000)
    detail = refused.value.detail
    assert "5000 digits" in detail and f"at most {MAX_INT_DIGITS}" in detail
    assert "sys." not in detail and "set_int_max_str_digits" not in detail
    with pytest.raises(InvalidJson, match="5000 digits"):
        json_parse('{"n": [-' + "1" * 5000 + "]}")


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b" \n",
        b"NaN",
        b"[Infinity]",
        b"1e400",
        b"[12345678901234567890, 1e400]",
        b"[12345678901234567890, NaN]",
        b'"\\ud800"',
        b'["\\udc00", 12345678901234567890]',
        b"\xff",
        b'["\xed\xa0\x80", 12345678901234567890]',  # a surrogate as UTF-8 bytes
        b"\xff\xfe[\x001\x002\x003\x004\x005\x006\x007\x008\x009\x000\x001\x00]\x00",  # UTF-16
        b"[1,]",
        b'{"a":1} 2',
    ],
)
def test_what_json_does_not_allow_is_refused(text):
    with pytest.raises(InvalidJson) as refused:
        json_parse(text)
    assert refused.value.status_code == 400 and refused.value.detail


def test_text_frames_parse_like_bytes():
    assert json_parse('{"data": "é"}', what="frame") == {"data": "é"}
    with pytest.raises(InvalidJson, match="The frame is not valid JSON"):
        json_parse("{", what="frame")
