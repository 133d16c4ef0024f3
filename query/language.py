"""The query language: a prefix, conditions on dot paths into the JSON value, an order.

Parsing only; `query.compiler` turns a parsed query into SQL. Everything a caller can get wrong
is refused here with an InvalidInput naming the problem.

Semantics (the same on every database, and `query_evaluate` states them in plain Python):

- a path is a dot path: `address.city`, `tags.0`; a segment of digits indexes an array (never an
  object key), any other segment names an object key;
- a missing path matches no condition but `exists: false`;
- `eq`/`ne`/`in` compare scalars (string, number, boolean, null) as JSON does: a number equals
  only a number of the same value (1 == 1.0), a string only the same string; `ne` matches a
  present path whose value is not equal (a value of another type is not equal);
- `lt le gt ge` compare numbers with numbers and strings with strings (by code point); a value
  of another type never matches;
- `contains`: an array holding the scalar as one of its elements, or (for a string value) a
  string holding it as a substring; `prefix`: a string starting with it; `exists`: true/false.

Order of mixed types (ascending): missing < null < false < true < numbers < strings < arrays <
objects; numbers by value, strings by code point; arrays and objects by key alone. Ties are
broken by key, ascending, whatever the direction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kv.keys import prefix_validate
from kvsite.exceptions import InvalidInput

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "exists", "prefix")
RANGE_OPS = ("lt", "le", "gt", "ge")
MAX_CONDITIONS = 32
MAX_ORDER = 4
MAX_IN = 256
MAX_PATH_DEPTH = 16
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_INT = 2**63 - 1
# Segments are inlined into SQL (indexes match only literal paths): no quotes, brackets,
# backslashes or control characters, so nothing needs escaping.
_SEGMENT = re.compile(r"[^\x00-\x1f\x7f\"'\\\[\]$*.]+")

Scalar = str | int | float | bool | None
Segment = str | int


class QueryInvalid(InvalidInput):
    code = "invalid_query"


@dataclass(frozen=True)
class Condition:
    path: tuple[Segment, ...]
    op: str
    value: object

    @property
    def dotted(self) -> str:
        return path_format(self.path)


@dataclass(frozen=True)
class Order:
    path: tuple[Segment, ...]
    descending: bool = False


@dataclass(frozen=True)
class Query:
    prefix: str
    where: tuple[Condition, ...] = ()
    order_by: tuple[Order, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    keys: bool = False


def path_parse(raw: object, *, where: str = "path") -> tuple[Segment, ...]:
    """A dot path as segments (digit segments as ints); QueryInvalid if malformed."""
    if not isinstance(raw, str) or not raw:
        raise QueryInvalid(f"{where} must be a non-empty dot path such as 'address.city'.")
    segments: list[Segment] = []
    for part in raw.split("."):
        if not _SEGMENT.fullmatch(part):
            raise QueryInvalid(
                f"{where} {raw!r}: each segment must be non-empty and free of quotes, brackets, "
                "backslashes, '$', '*' and control characters."
            )
        segments.append(int(part) if part.isdigit() and part.isascii() else part)
    if len(segments) > MAX_PATH_DEPTH:
        raise QueryInvalid(f"{where} {raw!r} is deeper than {MAX_PATH_DEPTH} segments.")
    for segment in segments:
        if isinstance(segment, int) and segment > MAX_INT:
            raise QueryInvalid(f"{where} {raw!r}: an array index is too large.")
    return tuple(segments)


def path_format(path: tuple[Segment, ...]) -> str:
    return ".".join(str(s) for s in path)


def _scalar(value: object, *, what: str) -> Scalar:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if -MAX_INT - 1 <= value <= MAX_INT:
            return value
        raise QueryInvalid(f"{what}: integers must fit in 64 bits.")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
    raise QueryInvalid(f"{what} must be a string, a number, true, false or null.")


def _condition_value(op: str, value: object, what: str) -> object:
    if op == "exists":
        if not isinstance(value, bool):
            raise QueryInvalid(f"{what}: 'exists' takes true or false.")
        return value
    if op == "in":
        if not isinstance(value, list):
            raise QueryInvalid(f"{what}: 'in' takes a list of scalars.")
        if len(value) > MAX_IN:
            raise QueryInvalid(f"{what}: 'in' takes at most {MAX_IN} values.")
        return tuple(_scalar(v, what=what) for v in value)
    scalar = _scalar(value, what=what)
    if op in RANGE_OPS and (isinstance(scalar, bool) or not isinstance(scalar, int | float | str)):
        raise QueryInvalid(f"{what}: {op!r} compares numbers or strings.")
    if op == "prefix" and not isinstance(scalar, str):
        raise QueryInvalid(f"{what}: 'prefix' takes a string.")
    return scalar


def _condition_parse(raw: object, index: int) -> Condition:
    what = f"where[{index}]"
    if not isinstance(raw, dict):
        raise QueryInvalid(f'{what} must be an object {{"path", "op", "value"}}.')
    unknown = set(raw) - {"path", "op", "value"}
    if unknown:
        raise QueryInvalid(f"{what}: unknown field {sorted(unknown)[0]!r}.")
    op = raw.get("op")
    if op not in OPS:
        raise QueryInvalid(f"{what}: op must be one of {' '.join(OPS)}, not {op!r}.")
    if "value" not in raw:
        raise QueryInvalid(f"{what}: a condition needs a value.")
    path = path_parse(raw.get("path"), where=f"{what}.path")
    return Condition(path=path, op=op, value=_condition_value(op, raw["value"], what))


def _order_parse(raw: object) -> tuple[Order, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or len(raw) > MAX_ORDER:
        raise QueryInvalid(f"order_by must be a list of up to {MAX_ORDER} paths ('-path': down).")
    orders = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise QueryInvalid(f"order_by[{i}] must be a path, or '-path' for descending.")
        descending = item.startswith("-")
        path = path_parse(item[1:] if descending else item, where=f"order_by[{i}]")
        orders.append(Order(path=path, descending=descending))
    return tuple(orders)


def query_parse(data: object) -> Query:
    """The parsed form of a query body; QueryInvalid naming the first problem."""
    if not isinstance(data, dict):
        raise QueryInvalid("A query is a JSON object.")
    known = {"prefix", "where", "order_by", "limit", "cursor", "keys"}
    unknown = set(data) - known
    if unknown:
        raise QueryInvalid(f"Unknown query field {sorted(unknown)[0]!r}.")
    prefix = data.get("prefix")
    prefix = "" if prefix is None else prefix
    if not isinstance(prefix, str):
        raise QueryInvalid("prefix must be a string.")
    prefix_validate(prefix)
    where = data.get("where")
    where = [] if where is None else where
    if not isinstance(where, list):
        raise QueryInvalid("where must be a list of conditions.")
    if len(where) > MAX_CONDITIONS:
        raise QueryInvalid(f"where takes at most {MAX_CONDITIONS} conditions.")
    limit = data.get("limit", DEFAULT_LIMIT)
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise QueryInvalid(f"limit must be an integer from 1 to {MAX_LIMIT}.")
    cursor = data.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise QueryInvalid("cursor must be a string: pass next_cursor from a previous page.")
    keys = data.get("keys", False)
    if not isinstance(keys, bool):
        raise QueryInvalid("keys must be true or false.")
    return Query(
        prefix=prefix,
        where=tuple(_condition_parse(c, i) for i, c in enumerate(where)),
        order_by=_order_parse(data.get("order_by")),
        limit=limit,
        cursor=cursor or None,
        keys=keys,
    )


# --- The same semantics in plain Python (the reference the database is tested against) ---------

_MISSING = object()


def value_at(document: object, path: tuple[Segment, ...]) -> object:
    """The value at `path`, or _MISSING."""
    node = document
    for segment in path:
        if isinstance(segment, int):
            if not isinstance(node, list) or segment >= len(node):
                return _MISSING
            node = node[segment]
        else:
            if not isinstance(node, dict) or segment not in node:
                return _MISSING
            node = node[segment]
    return node


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _equal(a: object, b: object) -> bool:
    kind = _kind(a)
    return kind == _kind(b) and kind in ("null", "bool", "number", "string") and a == b


def condition_holds(condition: Condition, document: object) -> bool:
    """Whether `condition` holds for `document`, by the rules in this module's docstring."""
    found = value_at(document, condition.path)
    op, value = condition.op, condition.value
    if op == "exists":
        return (found is not _MISSING) == value
    if found is _MISSING:
        return False
    if op == "eq":
        return _equal(found, value)
    if op == "ne":
        return not _equal(found, value)
    if op == "in":
        return any(_equal(found, v) for v in value)
    if op in RANGE_OPS:
        if _kind(found) != _kind(value):
            return False
        a, b = (found.encode(), value.encode()) if isinstance(value, str) else (found, value)
        return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    if op == "prefix":
        return isinstance(found, str) and found.startswith(value)
    # contains
    if isinstance(found, list):
        return any(_equal(item, value) for item in found)
    return isinstance(found, str) and isinstance(value, str) and value in found


_RANK = {"null": 1, "bool": 2, "number": 4, "string": 5, "array": 6, "object": 7}


def sort_key(document: object, path: tuple[Segment, ...]) -> tuple:
    """The ascending sort position of `document` by `path` (ties: by key, added by the caller)."""
    found = value_at(document, path)
    if found is _MISSING:
        return (0, 0)
    kind = _kind(found)
    if kind == "bool":
        return (3 if found else 2, 0)
    if kind == "number":
        return (4, found)
    if kind == "string":
        return (5, found.encode())
    return (_RANK[kind], 0)
