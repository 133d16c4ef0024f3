"""Property: on random documents and random conditions, the database (SQLite, or PostgreSQL under
scripts/with-postgres) returns exactly the keys, in exactly the order, that query.language's
plain Python evaluation gives."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kv.models import Entry
from kv.services import entry_put
from query.language import OPS, condition_holds, query_parse, sort_key
from query.selectors import entries_query
from query.services import index_build, index_put

pytestmark = pytest.mark.django_db

NAMES = ["a", "b", "c"]
PATHS = ["a", "b", "a.b", "a.0", "0", "b.1", "a.b.0", "c"]
# No NUL: PostgreSQL's jsonb cannot hold \u0000 (see docs/queries.md).
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=6)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
    st.sampled_from(["", "a", "ab", "b", "é", "日本", "😀", "A", "10"]),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENTS = st.one_of(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=3), VALUES)


@st.composite
def conditions(draw):
    op = draw(st.sampled_from(OPS))
    path = draw(st.sampled_from(PATHS))
    if op == "exists":
        value = draw(st.booleans())
    elif op == "in":
        value = draw(st.lists(SCALARS, max_size=3))
    elif op in ("lt", "le", "gt", "ge"):
        value = draw(st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6).map(round), TEXT))
    elif op == "prefix":
        value = draw(st.sampled_from(["", "a", "日", "1"]) | TEXT)
    else:
        value = draw(SCALARS)
    return {"path": path, "op": op, "value": value}


ORDERS = st.lists(st.sampled_from(PATHS + [f"-{p}" for p in PATHS]), max_size=2)


def _check(documents, where, order_by):
    Entry.objects.filter(key__startswith="p/").delete()
    for i, document in enumerate(documents):
        entry_put(key=f"p/{i:02}", value=json.dumps(document))
    body = {"prefix": "p/", "where": where, "order_by": order_by, "limit": 1000}
    query = query_parse(body)
    docs = {f"p/{i:02}": d for i, d in enumerate(documents)}
    matching = [k for k, d in docs.items() if all(condition_holds(c, d) for c in query.where)]
    expected = sorted(matching)
    for order in reversed(query.order_by):  # stable sorts, last key first; ties stay by key
        expected.sort(key=lambda k, o=order: sort_key(docs[k], o.path), reverse=order.descending)
    got = [e.key for e in entries_query(query=query).items]
    assert got == expected, (where, order_by)
    # and the same page by page
    paged, cursor = [], None
    while True:
        page = entries_query(query=query_parse({**body, "limit": 2, "cursor": cursor}))
        paged += [e.key for e in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert paged == expected


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    documents=st.lists(DOCUMENTS, min_size=1, max_size=8),
    where=st.lists(conditions(), max_size=2),
    order_by=ORDERS,
)
def test_database_agrees_with_python(documents, where, order_by):
    _check(documents, where, order_by)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    documents=st.lists(DOCUMENTS, min_size=1, max_size=8),
    where=st.lists(conditions(), min_size=1, max_size=2),
)
def test_database_agrees_with_python_through_indexes(documents, where):
    for path in {c["path"] for c in where}:
        index, _ = index_put(prefix="p/", path=path)
        index_build(name=index.name)
    _check(documents, where, [])
