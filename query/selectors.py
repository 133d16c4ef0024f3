"""Running a query: one SELECT in the database, the page it yields, the index that served it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson
from django.db import OperationalError, connection

from kv.acl import SYSTEM, Caller
from kv.hlc import wall_ms
from kv.models import Entry

from .compiler import INDEX_NAME_PREFIX, compile_query
from .language import Query, QueryInvalid
from .models import READY, ValueIndex
from .services import dialect, index_spec

_INDEX_NAME = re.compile(INDEX_NAME_PREFIX + r"[0-9a-f]{16}")
_BAD_CURSOR = "Invalid cursor: pass next_cursor from a previous page of the same query."


@dataclass
class QueryPage:
    items: list[Entry]
    next_cursor: str | None
    index: str | None


def _fingerprint(query: Query) -> str:
    shape = repr((query.prefix, query.where, query.order_by))
    return hashlib.sha256(shape.encode()).hexdigest()[:12]


def _cursor_encode(query: Query, values: list, key: str) -> str:
    values = [str(v) if isinstance(v, Decimal) else v for v in values]
    raw = orjson.dumps([_fingerprint(query), values, key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _value_fits(kind: str, value: object) -> bool:
    if kind == "rank":
        return type(value) is int
    if value is None:
        return True
    if kind == "scalar":
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    if kind == "numeric":
        try:
            return isinstance(value, str) and Decimal(value).is_finite()
        except InvalidOperation:
            return False
    return isinstance(value, str)


def _cursor_decode(query: Query, cursor: str, kinds: list[str]) -> tuple[list, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fingerprint, values, key = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise QueryInvalid(_BAD_CURSOR) from None
    if fingerprint != _fingerprint(query) or not isinstance(key, str):
        raise QueryInvalid(_BAD_CURSOR)
    if not isinstance(values, list) or len(values) != len(kinds):
        raise QueryInvalid(_BAD_CURSOR)
    if not all(_value_fits(kind, value) for kind, value in zip(kinds, values, strict=True)):
        raise QueryInvalid(_BAD_CURSOR)
    return values, key


def indexes_covering(prefix: str) -> list[ValueIndex]:
    """The ready indexes whose prefix covers `prefix`."""
    ready = ValueIndex.objects.filter(state=READY)
    return [index for index in ready if prefix.startswith(index.prefix)]


def entries_query(
    *, query: Query, caller: Caller = SYSTEM, now: int | None = None, explain: bool = True
) -> QueryPage:
    """One page of the live entries under the query's prefix that match every condition and
    that `caller` may read, in the query's order, and the index the database used (if any)."""
    now = wall_ms() if now is None else now
    specs = [index_spec(index) for index in indexes_covering(query.prefix)]
    sql_dialect = dialect()
    plain = compile_query(
        query, dialect=sql_dialect, caller=caller, now=now, indexes=specs, after=None
    )
    after = (
        _cursor_decode(query, query.cursor, plain.sort_kinds) if query.cursor is not None else None
    )
    compiled = (
        plain
        if after is None
        else compile_query(
            query, dialect=sql_dialect, caller=caller, now=now, indexes=specs, after=after
        )
    )
    try:
        rows = list(Entry.objects.raw(compiled.sql, compiled.params))
    except OperationalError:
        if compiled.forced is None:
            raise
        # the planner found no way to use the named index for these terms: let it choose
        compiled = compile_query(
            query, dialect=sql_dialect, caller=caller, now=now, indexes=specs, after=after,
            force=False,
        )  # fmt: skip
        rows = list(Entry.objects.raw(compiled.sql, compiled.params))
    used = None
    if explain and compiled.indexes:
        with connection.cursor() as cursor:
            plan = sql_dialect.explain(cursor, compiled.sql, compiled.params)
        found = _INDEX_NAME.findall(plan)
        used = found[0] if found else None
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        values = [getattr(last, f"s{i}") for i in range(len(plain.sort_kinds))]
        next_cursor = _cursor_encode(query, values, last.key)
    return QueryPage(items=rows, next_cursor=next_cursor, index=used)
