"""The query language on the database (SQLite, or PostgreSQL under scripts/with-postgres): the
same cases on either, compared with fixed expected answers and with query.language's Python
evaluation of the same conditions."""

import json

import pytest

from kv.acl import Caller, mode_parse
from kv.services import entry_put
from query.language import QueryInvalid, condition_holds, query_parse, sort_key
from query.selectors import entries_query
from query.services import index_build, index_put

pytestmark = pytest.mark.django_db

DOCS = {
    "d/a": {"n": 1, "s": "apple", "tags": ["x", "y"], "nested": {"k": [1, [2, 3]]}},
    "d/b": {"n": 2.5, "s": "Banana", "tags": ["y"], "nested": {"k": []}},
    "d/c": {"n": -3, "s": "cherry", "tags": [], "flag": True},
    "d/d": {"n": "10", "s": "été", "tags": "x y", "flag": False},
    "d/e": {"n": None, "s": "日本語", "tags": [1, 2.0, None, True]},
    "d/f": {"n": 1.0, "s": "", "tags": [["x"]], "flag": None},
    "d/g": {"n": [1], "s": {"x": 1}, "tags": {"0": "x"}},
    "d/h": {"n": 100, "s": "zebra", "tags": ["x"], "nested": {"k": [0]}},
    "d/i": "just a string",
    "d/j": [10, 20, {"n": 5}],
    "d/k": {"n": 1e100, "s": "😀 emoji"},
    "d/l": {},
}

CASES = [
    ([("n", "eq", 1)], ["d/a", "d/f"]),
    ([("n", "eq", "10")], ["d/d"]),
    ([("n", "eq", None)], ["d/e"]),
    ([("flag", "eq", True)], ["d/c"]),
    ([("flag", "eq", False)], ["d/d"]),
    ([("flag", "eq", None)], ["d/f"]),
    ([("n", "ne", 1)], ["d/b", "d/c", "d/d", "d/e", "d/g", "d/h", "d/k"]),
    ([("n", "gt", 1)], ["d/b", "d/h", "d/k"]),
    ([("n", "ge", 1)], ["d/a", "d/b", "d/f", "d/h", "d/k"]),
    ([("n", "lt", 0)], ["d/c"]),
    ([("n", "le", 2.5)], ["d/a", "d/b", "d/c", "d/f"]),
    ([("n", "lt", "2")], ["d/d"]),
    ([("s", "gt", "a")], ["d/a", "d/c", "d/d", "d/e", "d/h", "d/k"]),
    ([("s", "lt", "a")], ["d/b", "d/f"]),
    ([("s", "ge", "é")], ["d/d", "d/e", "d/k"]),
    ([("n", "in", [1, "10", None])], ["d/a", "d/d", "d/e", "d/f"]),
    ([("n", "in", [])], []),
    ([("s", "prefix", "ch")], ["d/c"]),
    ([("s", "prefix", "")], ["d/a", "d/b", "d/c", "d/d", "d/e", "d/f", "d/h", "d/k"]),
    ([("s", "prefix", "日本")], ["d/e"]),
    ([("tags", "contains", "x")], ["d/a", "d/d", "d/h"]),
    ([("tags", "contains", 2)], ["d/e"]),
    ([("tags", "contains", None)], ["d/e"]),
    ([("tags", "contains", True)], ["d/e"]),
    ([("s", "contains", "an")], ["d/b"]),
    ([("s", "contains", "😀")], ["d/k"]),
    ([("tags.0", "eq", "x")], ["d/a", "d/h"]),
    ([("tags.0", "eq", 1)], ["d/e"]),
    ([("tags.0.0", "eq", "x")], ["d/f"]),
    ([("nested.k.1.0", "eq", 2)], ["d/a"]),
    ([("nested.k.1", "contains", 3)], ["d/a"]),
    ([("2.n", "eq", 5)], ["d/j"]),
    ([("0", "ge", 10)], ["d/j"]),
    ([("flag", "exists", True)], ["d/c", "d/d", "d/f"]),
    (
        [("nested", "exists", False)],
        ["d/c", "d/d", "d/e", "d/f", "d/g", "d/i", "d/j", "d/k", "d/l"],
    ),
    ([("n", "gt", 0), ("tags", "contains", "x")], ["d/a", "d/h"]),
    ([("n", "eq", 1), ("s", "eq", "")], ["d/f"]),
    ([("missing", "ne", 1)], []),
    ([("s.x", "eq", 1)], ["d/g"]),
]


def _load(docs=DOCS):
    for key, value in docs.items():
        entry_put(key=key, value=json.dumps(value))


def _keys(body: dict, caller=None) -> list[str]:
    query = query_parse(body)
    kwargs = {"caller": caller} if caller is not None else {}
    page = entries_query(query=query, **kwargs)
    return [e.key for e in page.items]


def _body(conditions, **extra) -> dict:
    where = [{"path": p, "op": op, "value": v} for p, op, v in conditions]
    return {"prefix": "d/", "where": where, "limit": 1000, **extra}


def _python(conditions) -> list[str]:
    query = query_parse(_body(conditions))
    return sorted(k for k, doc in DOCS.items() if all(condition_holds(c, doc) for c in query.where))


@pytest.mark.parametrize(("conditions", "expected"), CASES)
def test_case(conditions, expected):
    _load()
    assert _keys(_body(conditions)) == expected
    assert _python(conditions) == expected


@pytest.mark.parametrize(("conditions", "expected"), CASES)
def test_case_with_indexes(conditions, expected):
    """The same answers when every path in the case is indexed."""
    _load()
    for path in {p for p, _, _ in conditions}:
        index, _ = index_put(prefix="d/", path=path)
        assert index_build(name=index.name).state == "ready"
    assert _keys(_body(conditions)) == expected


MIXED_ORDER = ["d/i", "d/j", "d/l", "d/e", "d/c", "d/a", "d/f", "d/b", "d/h", "d/k", "d/d", "d/g"]


def test_order_of_mixed_types():
    """missing < null < true/false < numbers < strings < arrays < objects; ties by key."""
    _load()
    assert _keys({"prefix": "d/", "order_by": ["n"]}) == [
        "d/i", "d/j", "d/l",  # missing
        "d/e",  # null
        "d/c",  # -3
        "d/a", "d/f",  # 1, 1.0 (tie: key)
        "d/b", "d/h", "d/k",  # 2.5, 100, 1e100
        "d/d",  # "10"
        "d/g",  # [1]
    ]  # fmt: skip
    expected = sorted(DOCS, key=lambda k: (sort_key(DOCS[k], ("n",)), k))
    assert _keys({"prefix": "d/", "order_by": ["n"]}) == expected
    down = sorted(DOCS, key=lambda k: sort_key(DOCS[k], ("n",)), reverse=True)
    assert _keys({"prefix": "d/", "order_by": ["-n"]})[:3] == down[:3]


def test_order_of_strings_is_by_code_point():
    _load()
    body = {
        "prefix": "d/",
        "where": [{"path": "s", "op": "prefix", "value": ""}],
        "order_by": ["s"],
    }
    assert _keys(body) == ["d/f", "d/b", "d/a", "d/c", "d/h", "d/d", "d/e", "d/k"]


def test_flags_order_false_before_true():
    _load()
    where = [{"path": "flag", "op": "exists", "value": True}]
    keys = _keys({"prefix": "d/", "where": where, "order_by": ["-flag"]})
    assert keys == ["d/c", "d/d", "d/f"]


@pytest.mark.parametrize("order_by", [[], ["n"], ["-n"], ["s", "-n"], ["tags.0"]])
@pytest.mark.parametrize("limit", [1, 2, 5])
def test_pages_join_up(order_by, limit):
    _load()
    whole = _keys({"prefix": "d/", "order_by": order_by, "limit": 1000})
    seen, cursor = [], None
    while True:
        body = {"prefix": "d/", "order_by": order_by, "limit": limit, "cursor": cursor}
        page = entries_query(query=query_parse(body))
        seen += [e.key for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == whole


def test_paging_while_keys_change():
    """Keys written, deleted or changed between pages: the keys that stay as they were are each
    seen once, in order."""
    _load()
    body = {"prefix": "d/", "order_by": ["n"], "limit": 3}
    page = entries_query(query=query_parse(body))
    seen = [e.key for e in page.items]
    entry_put(key="d/0", value=json.dumps({}))  # before the cursor
    entry_put(key="d/zz", value=json.dumps({"n": 50}))  # after it
    from kv.services import entry_delete

    entry_delete(key="d/h")
    while page.next_cursor:
        page = entries_query(query=query_parse({**body, "cursor": page.next_cursor}))
        seen += [e.key for e in page.items]
    unchanged = [k for k in _keys({"prefix": "d/", "order_by": ["n"]}) if k not in ("d/0", "d/zz")]
    assert [k for k in seen if k not in ("d/zz", "d/h")] == unchanged
    assert "d/0" not in seen and "d/zz" in seen and len(seen) == len(set(seen))


def test_expired_and_deleted_keys_never_appear():
    from kv.hlc import wall_ms
    from kv.services import entry_delete

    _load()
    entry_put(key="d/ttl", value=json.dumps({"n": 1}), ttl=1, now=wall_ms() - 5000)
    entry_delete(key="d/a")
    assert _keys(_body([("n", "eq", 1)])) == ["d/f"]


def test_reserved_keys_never_appear(root_user):
    assert _keys({"prefix": "", "where": [{"path": "username", "op": "eq", "value": "root"}]}) == []


def test_read_permission_filters_as_listing_does(django_user_model):
    from kv.selectors import entries_under, entry_readable

    _load()
    mode = {"d/a": "cdwr--------", "d/b": "cdwrcdwr----", "d/c": "cdwr-------r"}
    from kv.models import Entry

    for key, m in mode.items():
        Entry.objects.filter(key=key).update(owner="bob", group="staff", mode=mode_parse(m))
    callers = [
        Caller(username="bob"),
        Caller(username="carol", groups=frozenset({"staff"})),
        Caller(username="dave", groups=frozenset({"other"})),
        Caller(username=None),
    ]
    for caller in callers:
        listed = [e.key for e in entries_under(prefix="d/", limit=1000, caller=caller).items]
        queried = _keys({"prefix": "d/", "limit": 1000}, caller=caller)
        assert queried == listed
        under = Entry.objects.filter(key__startswith="d/")
        readable = [e.key for e in under if entry_readable(caller, e)]
        assert sorted(readable) == queried
    assert "d/a" not in _keys({"prefix": "d/"}, caller=callers[1])
    assert "d/b" in _keys({"prefix": "d/"}, caller=callers[1])
    assert "d/b" not in _keys({"prefix": "d/"}, caller=callers[2])


def test_index_serves_equality_and_range():
    """Over enough keys that PostgreSQL's planner prefers the index too."""
    from query.services import index_build as build

    for i in range(2000):
        entry_put(key=f"d/{i:05}", value=json.dumps({"n": i, "s": f"s{i:05}", "t": [i]}))
    indexes = {path: index_put(prefix="d/", path=path)[0] for path in ("n", "s", "t.0")}
    for index in indexes.values():
        build(name=index.name)
    cases = [
        ("n", "eq", 7, 1),
        ("n", "gt", 1990, 9),
        ("n", "le", 2, 3),
        ("s", "eq", "s00042", 1),
        ("s", "prefix", "s0199", 10),
        ("s", "lt", "s00003", 3),
        ("t.0", "eq", 5, 1),
        ("n", "in", [3], 1),
    ]
    for path, op, value, count in cases:
        page = entries_query(query=query_parse(_body([(path, op, value)])))
        assert len(page.items) == count, (path, op, value)
        assert page.index == indexes[path].name, (path, op, value)
    page = entries_query(query=query_parse(_body([("x", "eq", "apple")])))
    assert page.index is None


def test_index_under_a_wider_prefix_serves_a_narrower_query():
    entry_put(key="d/x/1", value=json.dumps({"n": 1}))
    index, _ = index_put(prefix="d/", path="n")
    index_build(name=index.name)
    page = entries_query(query=query_parse({"prefix": "d/x/", "where": [
        {"path": "n", "op": "eq", "value": 1}]}))  # fmt: skip
    assert [e.key for e in page.items] == ["d/x/1"] and page.index == index.name


def test_a_building_index_serves_nothing():
    _load()
    index_put(prefix="d/", path="n")
    page = entries_query(query=query_parse(_body([("n", "eq", 1)])))
    assert page.index is None and [e.key for e in page.items] == ["d/a", "d/f"]


def test_unicode_and_quotes_in_prefixes_and_values():
    docs = {"q/l'été/1": {"name": "O'Brien"}, "q/l'été/2": {"name": "100%"}}
    _load(docs)
    index, _ = index_put(prefix="q/l'été/", path="name")
    assert index_build(name=index.name).state == "ready"
    for value, key in (("O'Brien", "q/l'été/1"), ("100%", "q/l'été/2")):
        query = query_parse({"prefix": "q/l'été/", "where": [
            {"path": "name", "op": "eq", "value": value}]})  # fmt: skip
        page = entries_query(query=query)
        assert [e.key for e in page.items] == [key] and page.index == index.name


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"where": {}},
        {"where": [{"path": "a", "op": "like", "value": 1}]},
        {"where": [{"path": "a", "op": "eq"}]},
        {"where": [{"path": "", "op": "eq", "value": 1}]},
        {"where": [{"path": "a..b", "op": "eq", "value": 1}]},
        {"where": [{"path": "a'b", "op": "eq", "value": 1}]},
        {"where": [{"path": 'a"b', "op": "eq", "value": 1}]},
        {"where": [{"path": "a", "op": "eq", "value": [1]}]},
        {"where": [{"path": "a", "op": "eq", "value": {"x": 1}}]},
        {"where": [{"path": "a", "op": "lt", "value": True}]},
        {"where": [{"path": "a", "op": "lt", "value": None}]},
        {"where": [{"path": "a", "op": "in", "value": 1}]},
        {"where": [{"path": "a", "op": "exists", "value": 1}]},
        {"where": [{"path": "a", "op": "prefix", "value": 1}]},
        {"where": [{"path": "a", "op": "eq", "value": 2**70}]},
        {"where": [{"path": "a", "op": "eq", "value": 1, "x": 1}]},
        {"limit": 0},
        {"limit": 1001},
        {"limit": "5"},
        {"order_by": [1]},
        {"keys": "yes"},
        {"cursor": 5},
        {"prefix": "/bad"},
        {"surprise": 1},
    ],
)
def test_malformed_queries_are_refused(body):
    with pytest.raises(QueryInvalid if body != {"prefix": "/bad"} else Exception):
        query_parse(body)


@pytest.mark.parametrize("cursor", ["x", "eyJhIjoxfQ", "WyJhIiwgW10sICJrIl0"])
def test_bad_cursors_are_refused(cursor):
    _load()
    with pytest.raises(QueryInvalid):
        entries_query(query=query_parse({"prefix": "d/", "order_by": ["n"], "cursor": cursor}))


def test_a_cursor_of_another_query_is_refused():
    _load()
    page = entries_query(query=query_parse({"prefix": "d/", "order_by": ["n"], "limit": 1}))
    with pytest.raises(QueryInvalid):
        entries_query(
            query=query_parse({"prefix": "d/", "order_by": ["s"], "cursor": page.next_cursor})
        )


def test_compressed_values_answer_the_same(settings):
    """On SQLite values from KVS_COMPRESS_MIN_BYTES are stored as zstd BLOBs (kv.fields): the
    queries, and the indexes, read them inflated."""
    from django.db import connection

    settings.KVS_COMPRESS_MIN_BYTES = 10
    _load()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kv_entry WHERE typeof(value) = 'blob'")
            assert cursor.fetchone()[0] > 5
    for conditions, expected in CASES:
        assert _keys(_body(conditions)) == expected, conditions
    for path in ("n", "s", "tags.0"):
        index, _ = index_put(prefix="d/", path=path)
        assert index_build(name=index.name).state == "ready"
    for conditions, expected in CASES:
        assert _keys(_body(conditions)) == expected, conditions
    page = entries_query(query=query_parse(_body([("s", "eq", "apple")])))
    assert [e.key for e in page.items] == ["d/a"] and page.index is not None


def test_a_failed_build_says_why_and_can_be_retried(monkeypatch):
    from query import services
    from query.compiler import DIALECTS

    _load()
    index, _ = index_put(prefix="d/", path="n")
    dialect = DIALECTS[services.connection.vendor]
    monkeypatch.setattr(dialect, "index_create", lambda spec: ["CREATE INDEX nonsense ON nowhere"])
    failed = index_build(name=index.name)
    assert failed.state == "failed" and failed.error
    assert entries_query(query=query_parse(_body([("n", "eq", 1)]))).index is None
    monkeypatch.undo()
    again, created = index_put(prefix="d/", path="n")
    assert not created and again.state == "building" and not again.error
    assert index_build(name=index.name).state == "ready"
    assert entries_query(query=query_parse(_body([("n", "eq", 1)]))).index == index.name
