import pytest

from kv.keys import InvalidKey, key_validate, prefix_successor, prefix_validate, ttl_parse
from kvsite.exceptions import InvalidInput


@pytest.mark.parametrize("key", ["a", "a/b/c", "users/ünïcode/名前", "x" * 1024, "a.b/c..d"])
def test_valid_keys_pass(key):
    assert key_validate(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/a",
        "a/",
        "a//b",
        "a/./b",
        "a/../b",
        ".",
        "..",
        "a\x00b",
        "a\nb",
        "a\x7fb",
        "a\x85b",
        "x" * 1025,
        "é" * 513,  # 1026 bytes in UTF-8
        "_reserved",
        "_/x",
    ],
)
def test_invalid_keys_are_refused(key):
    with pytest.raises(InvalidKey):
        key_validate(key)


INVISIBLE = [
    pytest.param("a\u202eb", id="right-to-left-override"),
    pytest.param("a\u2066b\u2069", id="bidi-isolate"),
    pytest.param("a\u200fb", id="right-to-left-mark"),
    pytest.param("a\u200bb", id="zero-width-space"),
    pytest.param("a\u200db", id="zero-width-joiner"),
    pytest.param("\ufeffa", id="byte-order-mark"),
    pytest.param("a\u00adb", id="soft-hyphen"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param("a\u2029b", id="paragraph-separator"),
    pytest.param("a/\ufffd", id="replacement-character"),
]


@pytest.mark.parametrize("key", INVISIBLE)
def test_invisible_characters_and_the_replacement_character_are_refused(key):
    with pytest.raises(InvalidKey, match="U\\+"):
        key_validate(key)
    with pytest.raises(InvalidKey):
        prefix_validate(key + "/")


@pytest.mark.parametrize("key", INVISIBLE)
def test_versions_from_peers_keep_the_keys_earlier_nodes_accepted(key):
    assert key_validate(key, allow_reserved=True, from_peer=True) == key


def test_versions_from_peers_still_have_no_control_characters():
    with pytest.raises(InvalidKey, match="control"):
        key_validate("a\x00b", allow_reserved=True, from_peer=True)


def test_reserved_keys_are_allowed_where_the_system_asks():
    assert key_validate("_system/x", allow_reserved=True) == "_system/x"


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b", "a/b/"])
def test_listing_prefixes_may_end_in_a_slash(prefix):
    assert prefix_validate(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/a", "a//", "a//b", "_x"])
def test_bad_listing_prefixes_are_refused(prefix):
    with pytest.raises(InvalidKey):
        prefix_validate(prefix)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400), (" 7 ", 7)],
)
def test_ttl_forms(raw, seconds):
    assert ttl_parse(raw) == seconds


@pytest.mark.parametrize("raw", ["", "0", "0s", "-5", "5x", "abc", "1.5", "5 m", "9" * 13])
def test_bad_ttls_are_refused(raw):
    with pytest.raises(InvalidInput):
        ttl_parse(raw)


def test_prefix_successor_bounds_every_key_with_the_prefix():
    upper = prefix_successor("a/b")
    assert upper == "a/c"
    for key in ["a/b", "a/b/c", "a/b\U0010ffff\U0010ffff", "a/bz"]:
        assert "a/b" <= key < upper
    assert not ("a/b" <= "a/c" < upper)


def test_prefix_successor_carries_past_the_last_code_point():
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff") is None
    assert prefix_successor("\ud7ff") == "\ue000"
