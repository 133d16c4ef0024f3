"""GET /api/v1/kv/: prefix listing in key order, limit, cursor pagination, keys=1, separator."""

import pytest

from kv import services
from kv.acl import Caller

from .helpers import DEFAULT_MODE, created, expire, list_url, url

pytestmark = pytest.mark.django_db

ROOT = Caller(username="root", superuser=True)


def seed(*keys: str, value: str = "1") -> None:
    """Store keys through the service (faster than HTTP when only the listing is under test)."""
    for key in keys:
        services.entry_put(key=key, value=value, caller=ROOT)


def listing(client, **query) -> dict:
    response = client.get(list_url(**query))
    assert response.status_code == 200, response.content
    body = response.json()
    assert isinstance(body["items"], list)
    assert "next_cursor" in body
    return body


def keys_of(body: dict) -> list[str]:
    return [item["key"] for item in body["items"]]


def walk(client, **query) -> list[dict]:
    """Every page of a listing, following next_cursor until it is null."""
    pages = [listing(client, **query)]
    while pages[-1]["next_cursor"] is not None:
        assert len(pages) < 100, "pagination does not end"
        pages.append(listing(client, **query, cursor=pages[-1]["next_cursor"]))
    return pages


# --- prefix and order ----------------------------------------------------------------------------


def test_list_returns_keys_under_the_prefix_in_key_order(api):
    seed("a/2", "b/1", "a/10", "a/1", "a/1/x", "ab", "a")
    body = listing(api, prefix="a/")
    assert keys_of(body) == ["a/1", "a/1/x", "a/10", "a/2"]
    assert body["next_cursor"] is None


def test_list_orders_keys_by_utf8_bytes(api):
    seed("k/é", "k/z", "k/Z", "k/~", "k/😀", "k/雪")
    assert keys_of(listing(api, prefix="k/")) == ["k/Z", "k/z", "k/~", "k/é", "k/雪", "k/😀"]


def test_list_items_carry_the_same_fields_as_get(api):
    created(api, "cfg/a", {"x": [1, None]}, ttl="5m")
    item = listing(api, prefix="cfg/")["items"][0]
    got = api.get(url("cfg/a")).json()
    for field in ("key", "value", "version", "timestamp", "revision", "expires_at", "owner"):
        assert item[field] == got[field], field
    assert item["group"] is None and item["mode"] == DEFAULT_MODE


def test_list_includes_null_values(api):
    created(api, "n/x", None)
    item = listing(api, prefix="n/")["items"][0]
    assert "value" in item and item["value"] is None


def test_list_without_prefix_lists_every_key(api):
    seed("z", "a/b", "m")
    assert keys_of(listing(api)) == ["a/b", "m", "z"]


def test_list_prefix_is_a_plain_string_prefix(api):
    # Like etcd and Consul: "a" matches "a", "a/b" and "ab".
    seed("a", "a/b", "ab", "b")
    assert keys_of(listing(api, prefix="a")) == ["a", "a/b", "ab"]


def test_list_leaves_out_deleted_and_expired_keys(api):
    for key in ["p/live", "p/deleted", "p/expired"]:
        created(api, key, ttl="60")
    assert api.delete(url("p/deleted")).status_code == 204
    expire("p/expired")
    assert keys_of(listing(api, prefix="p/")) == ["p/live"]


def test_list_of_an_empty_prefix_answers_no_items_and_no_cursor(api):
    seed("a/1")
    assert listing(api, prefix="nothing/") == {"items": [], "next_cursor": None}


# --- limit and cursor ----------------------------------------------------------------------------


def test_limit_caps_the_page_and_gives_a_cursor(api):
    seed(*[f"k/{i:02d}" for i in range(5)])
    body = listing(api, prefix="k/", limit=2)
    assert keys_of(body) == ["k/00", "k/01"]
    assert isinstance(body["next_cursor"], str) and body["next_cursor"]


def test_default_limit_is_100_items(api):
    seed(*[f"k/{i:03d}" for i in range(101)])
    body = listing(api, prefix="k/")
    assert len(body["items"]) == 100
    assert body["next_cursor"] is not None


def test_cursor_pagination_walks_all_pages_once_each(api):
    expected = sorted(f"k/{i:02d}" for i in range(23))
    seed(*expected, "j", "l/0")
    pages = walk(api, prefix="k/", limit=5)
    assert [len(page["items"]) for page in pages] == [5, 5, 5, 5, 3]
    assert [key for page in pages for key in keys_of(page)] == expected
    assert pages[-1]["next_cursor"] is None


def test_last_full_page_has_no_cursor(api):
    seed(*[f"k/{i}" for i in range(4)])
    pages = walk(api, prefix="k/", limit=2)
    assert len(pages) == 2
    assert pages[1]["next_cursor"] is None


def test_limit_one_walks_every_key(api):
    seed("a", "b", "c")
    pages = walk(api, limit=1)
    assert [keys_of(page) for page in pages] == [["a"], ["b"], ["c"]]


def test_pagination_does_not_repeat_or_skip_keys_written_between_pages(api):
    seed("k/a", "k/c", "k/e", "k/g")
    first = listing(api, prefix="k/", limit=2)
    assert keys_of(first) == ["k/a", "k/c"]
    seed("k/b", "k/f")  # one before the cursor, one after it
    api.delete(url("k/e"))
    rest = walk(api, prefix="k/", limit=2, cursor=first["next_cursor"])
    assert [key for page in rest for key in keys_of(page)] == ["k/f", "k/g"]


def test_list_with_keys_1_leaves_values_out(api):
    created(api, "k/a", {"secret": "x" * 100})
    item = listing(api, prefix="k/", keys="1")["items"][0]
    assert "value" not in item
    assert item["key"] == "k/a" and item["version"]


def test_list_with_keys_0_includes_values(api):
    created(api, "k/a", [1])
    assert listing(api, prefix="k/", keys="0")["items"][0]["value"] == [1]


def test_keys_only_listing_paginates_too(api):
    seed(*[f"k/{i}" for i in range(5)])
    pages = walk(api, prefix="k/", keys="1", limit=2)
    assert [key for page in pages for key in keys_of(page)] == [f"k/{i}" for i in range(5)]
    assert all("value" not in item for page in pages for item in page["items"])


# --- separator -----------------------------------------------------------------------------------

DIRECTORY = [
    "d/a",
    "d/b/1",
    "d/b/2",
    "d/b/3/deep",
    "d/c",
    "d/c/x",
    "d/e/f/g",
    "d/e/h",
    "d/z",
    "dx",
    "e/1",
]


def test_separator_lists_direct_children_and_each_deeper_directory_once(api):
    seed(*DIRECTORY)
    body = listing(api, prefix="d/", separator="/")
    assert keys_of(body) == ["d/a", "d/c", "d/z"]
    assert body["prefixes"] == ["d/b/", "d/c/", "d/e/"]
    assert body["next_cursor"] is None


def test_separator_at_the_top_level(api):
    seed(*DIRECTORY, "top")
    body = listing(api, separator="/")
    assert keys_of(body) == ["dx", "top"]
    assert body["prefixes"] == ["d/", "e/"]


def test_separator_with_a_prefix_not_ending_in_the_separator(api):
    # As in S3: the part after the prefix is folded at its first separator.
    seed(*DIRECTORY)
    body = listing(api, prefix="d", separator="/")
    assert keys_of(body) == ["dx"]
    assert body["prefixes"] == ["d/"]


def test_separator_listing_of_a_leaf_directory_has_an_empty_prefixes_list(api):
    seed(*DIRECTORY)
    body = listing(api, prefix="d/b/3/", separator="/")
    assert keys_of(body) == ["d/b/3/deep"]
    assert body["prefixes"] == []


def test_separator_items_can_leave_values_out(api):
    seed(*DIRECTORY)
    body = listing(api, prefix="d/", separator="/", keys="1")
    assert keys_of(body) == ["d/a", "d/c", "d/z"]
    assert all("value" not in item for item in body["items"])


def test_directory_holding_only_deleted_or_expired_keys_is_not_listed(api):
    for key in ["d/a", "d/gone/1", "d/old/1"]:
        created(api, key, ttl="60")
    assert api.delete(url("d/gone/1")).status_code == 204
    expire("d/old/1")
    body = listing(api, prefix="d/", separator="/")
    assert keys_of(body) == ["d/a"]
    assert body["prefixes"] == []


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
def test_separator_pagination_lists_each_directory_once_across_pages(api, limit):
    seed(*DIRECTORY)
    seed(*[f"d/b/{i:02d}" for i in range(12)])  # a directory far bigger than a page
    pages = walk(api, prefix="d/", separator="/", limit=limit)
    for page in pages:
        assert len(page["items"]) + len(page["prefixes"]) <= limit
        if page["next_cursor"] is not None:
            assert len(page["items"]) + len(page["prefixes"]) == limit
    items = [key for page in pages for key in keys_of(page)]
    prefixes = [prefix for page in pages for prefix in page["prefixes"]]
    assert items == ["d/a", "d/c", "d/z"]
    assert prefixes == ["d/b/", "d/c/", "d/e/"]


def test_separator_pagination_over_many_directories(api):
    seed(*[f"r/{d:02d}/{k}" for d in range(10) for k in range(3)], "r/file")
    pages = walk(api, prefix="r/", separator="/", limit=3)
    prefixes = [prefix for page in pages for prefix in page["prefixes"]]
    assert prefixes == [f"r/{d:02d}/" for d in range(10)]
    assert [key for page in pages for key in keys_of(page)] == ["r/file"]
    assert len(pages) == 4
