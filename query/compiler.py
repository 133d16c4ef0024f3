"""One query compiler, two dialects: SQLite's JSON functions and PostgreSQL's jsonb.

A parsed `Query` becomes one SELECT over `kv_entry` that filters (conditions, liveness, read
permission, the cursor), orders and limits in the database. Paths and index prefixes are
inlined as literals (an expression index is matched only by the same literal expression; the
language admits no quote in a path segment, and prefixes are quoted by doubling); every value
the caller gives is a bound parameter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kv.acl import Caller, mode_bit
from kv.fields import INFLATE_SQL
from kv.keys import prefix_successor

from .language import Condition, Query, Segment

ENTRY_COLUMNS = (
    "id", "key", "value", "version", "hlc", "origin", "origin_joined_at", "deleted",
    "expires_at", "owner", "group", "mode", "revision", "digest", "bucket",
)  # fmt: skip
INDEX_NAME_PREFIX = "kvq_"


def sql_string(text: str) -> str:
    """A SQL string literal (standard quoting; '%' doubled for the DB-API's paramstyle)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


@dataclass
class Compiled:
    sql: str
    params: list
    sort_kinds: list[str]  # per extra sort column: what its cursor value must be
    indexes: list[str] = field(default_factory=list)  # names of the indexes its terms fit
    forced: str | None = None  # the index named in the FROM clause, if any


@dataclass(frozen=True)
class IndexSpec:
    name: str
    prefix: str
    path: tuple[Segment, ...]


def prefix_terms(prefix: str, *, literal: bool) -> tuple[list[str], list]:
    """`key` range terms for `prefix`, as literals (matching a partial index) or parameters."""
    if not prefix:
        return [], []
    upper = prefix_successor(prefix)
    if literal:
        terms = [f"key >= {sql_string(prefix)}"]
        if upper is not None:
            terms.append(f"key < {sql_string(upper)}")
        return terms, []
    terms, params = ["key >= %s"], [prefix]
    if upper is not None:
        terms.append("key < %s")
        params.append(upper)
    return terms, params


class Dialect:
    """What differs between the databases: how to reach a path, test its type, compare it."""

    vendor = ""
    live = "deleted = FALSE"

    def doc(self, path: tuple[Segment, ...]) -> str:
        raise NotImplementedError

    # -- conditions ----------------------------------------------------------------------------

    def condition(self, c: Condition) -> tuple[str, list]:
        op = c.op
        if op == "exists":
            return f"({self.doc(c.path)} IS {'NOT ' if c.value else ''}NULL)", []
        if op == "eq":
            return self.equal(c.path, c.value)
        if op == "ne":
            sql, params = self.equal(c.path, c.value)
            return f"({self.doc(c.path)} IS NOT NULL AND NOT COALESCE({sql}, FALSE))", params
        if op == "in":
            if not c.value:
                return "(1 = 0)", []
            parts = [self.equal(c.path, v) for v in c.value]
            return "(" + " OR ".join(p for p, _ in parts) + ")", [x for _, ps in parts for x in ps]
        if op in ("lt", "le", "gt", "ge"):
            sign = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
            return self.compare(c.path, sign, c.value)
        if op == "prefix":
            return self.starts(c.path, c.value)
        return self.contains(c.path, c.value)

    def equal(self, path, value) -> tuple[str, list]:
        raise NotImplementedError

    def compare(self, path, sign: str, value) -> tuple[str, list]:
        raise NotImplementedError

    def starts(self, path, value: str) -> tuple[str, list]:
        raise NotImplementedError

    def contains(self, path, value) -> tuple[str, list]:
        raise NotImplementedError

    # -- order ---------------------------------------------------------------------------------

    def sort_columns(self, path) -> list[tuple[str, str]]:
        """(expression, kind) per column that orders by `path` as the language defines."""
        raise NotImplementedError

    def cursor_param(self, kind: str) -> str:
        return "%s"

    def table(self, forced: str | None) -> str:
        """The FROM clause; `forced` names an index the query should be served by."""
        return "kv_entry"

    # -- indexes -------------------------------------------------------------------------------

    def index_create(self, spec: IndexSpec) -> list[str]:
        raise NotImplementedError

    def index_drop(self, spec: IndexSpec) -> list[str]:
        raise NotImplementedError

    def index_names(self, spec: IndexSpec) -> list[str]:
        return [spec.name]

    def explain(self, cursor, sql: str, params: list) -> str:
        raise NotImplementedError


def _sqlite_text(column: str) -> str:
    """The JSON text of a stored value: large ones are zstd BLOBs (kv.fields), read through the
    node's `kvs_inflate()`; text is used as it is, with no call into Python."""
    return f"(CASE WHEN typeof({column}) = 'blob' THEN {INFLATE_SQL}({column}) ELSE {column} END)"


class SqliteDialect(Dialect):
    vendor = "sqlite"
    # `+deleted`: without statistics SQLite would walk the (deleted, expires_at) index and sort
    # every live row by key; this leaves it the key range (188 ms against 1.2 ms on 20,000 keys)
    live = "+deleted = FALSE"
    _NUMBER = "('integer', 'real')"
    _VALUE = _sqlite_text("value")

    @staticmethod
    def json_path(path) -> str:
        return "'$" + "".join(f"[{s}]" if isinstance(s, int) else f'."{s}"' for s in path) + "'"

    def doc(self, path) -> str:
        return f"json_type({self._VALUE}, {self.json_path(path)})"

    def extract(self, path) -> str:
        return f"json_extract({self._VALUE}, {self.json_path(path)})"

    def _typed(self, path, value) -> str:
        kind = self.doc(path)
        if isinstance(value, str):
            return f"{kind} = 'text'"
        return f"{kind} IN {self._NUMBER}"

    def equal(self, path, value):
        kind = self.doc(path)
        if value is None:  # json_extract is NULL for JSON null (and for a missing path)
            return f"({self.extract(path)} IS NULL AND {kind} = 'null')", []
        if isinstance(value, bool):  # json_extract is 1 for true, 0 for false
            name = "true" if value else "false"
            return f"({self.extract(path)} = {int(value)} AND {kind} = '{name}')", []
        return f"({self.extract(path)} = %s AND {self._typed(path, value)})", [value]

    def compare(self, path, sign, value):
        return f"({self.extract(path)} {sign} %s AND {self._typed(path, value)})", [value]

    def starts(self, path, value):
        upper = prefix_successor(value) if value else None
        terms, params = [f"{self.extract(path)} >= %s"], [value]
        if upper is not None:
            terms.append(f"{self.extract(path)} < %s")
            params.append(upper)
        return "(" + " AND ".join([*terms, self._typed(path, "")]) + ")", params

    def contains(self, path, value):
        if value is None:
            match = "e.type = 'null'"
            params = []
        elif isinstance(value, bool):
            match, params = f"e.type = '{'true' if value else 'false'}'", []
        elif isinstance(value, str):
            match, params = "e.type = 'text' AND e.value = %s", [value]
        else:
            match, params = f"e.type IN {self._NUMBER} AND e.value = %s", [value]
        in_array = (
            f"({self.doc(path)} = 'array' AND EXISTS (SELECT 1 FROM "
            f"json_each({_sqlite_text('kv_entry.value')}, {self.json_path(path)}) AS e "
            f"WHERE {match}))"
        )
        if not isinstance(value, str):
            return f"({in_array})", params
        substring = f"({self.doc(path)} = 'text' AND instr({self.extract(path)}, %s) > 0)"
        return f"({substring} OR {in_array})", [value, *params]

    def sort_columns(self, path):
        kind = self.doc(path)
        rank = (
            f"CASE {kind} WHEN 'null' THEN 1 WHEN 'false' THEN 2 WHEN 'true' THEN 3 "
            "WHEN 'integer' THEN 4 WHEN 'real' THEN 4 WHEN 'text' THEN 5 WHEN 'array' THEN 6 "
            "WHEN 'object' THEN 7 ELSE 0 END"
        )
        value = f"CASE WHEN {kind} IN ('integer', 'real', 'text') THEN {self.extract(path)} END"
        return [(rank, "rank"), (value, "scalar")]

    def table(self, forced):
        # SQLite plans without value statistics: a declared index that fits a condition is
        # used (by key order with LIMIT it would otherwise prefer scanning the key range).
        return f'kv_entry INDEXED BY "{forced}"' if forced else "kv_entry"

    def index_create(self, spec):
        terms, _ = prefix_terms(spec.prefix, literal=True)
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        return [
            f'CREATE INDEX IF NOT EXISTS "{spec.name}" ON kv_entry '
            f"({self.extract(spec.path)}, key){where}".replace("%%", "%")
        ]

    def index_drop(self, spec):
        return [f'DROP INDEX IF EXISTS "{spec.name}"']

    def explain(self, cursor, sql, params):
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


class PostgresDialect(Dialect):
    vendor = "postgresql"

    @staticmethod
    def _step(segment) -> str:
        return str(segment) if isinstance(segment, int) else f"'{segment}'"

    @staticmethod
    def _json_path(path) -> str:
        return (
            "'strict $" + "".join(f"[{s}]" if isinstance(s, int) else f'."{s}"' for s in path) + "'"
        )

    def doc(self, path) -> str:
        if any(isinstance(s, int) for s in path):
            # `jsonb -> 0` reads a scalar as a one-element array ('"x"' -> 0 is "x"): a strict
            # JSON path indexes arrays only, and `silent` turns a mismatch into NULL
            return f"jsonb_path_query_first(value::jsonb, {self._json_path(path)}, '{{}}', true)"
        return "(value::jsonb" + "".join(f" -> {self._step(s)}" for s in path) + ")"

    def text(self, path) -> str:
        """The value at `path` as text (a string's characters), in byte order."""
        if any(isinstance(s, int) for s in path):
            return f"(({self.doc(path)} #>> '{{}}') COLLATE \"C\")"
        steps = "".join(f" -> {self._step(s)}" for s in path[:-1])
        return f'((value::jsonb{steps} ->> {self._step(path[-1])}) COLLATE "C")'

    def _kind(self, path) -> str:
        return f"jsonb_typeof({self.doc(path)})"

    def equal(self, path, value):
        return f"({self.doc(path)} = %s::jsonb)", [json.dumps(value)]

    def compare(self, path, sign, value):
        if isinstance(value, str):
            return f"({self.text(path)} {sign} %s AND {self._kind(path)} = 'string')", [value]
        return (
            f"({self.doc(path)} {sign} %s::jsonb AND {self._kind(path)} = 'number')",
            [json.dumps(value)],
        )

    def starts(self, path, value):
        upper = prefix_successor(value) if value else None
        terms, params = [f"{self.text(path)} >= %s"], [value]
        if upper is not None:
            terms.append(f"{self.text(path)} < %s")
            params.append(upper)
        return "(" + " AND ".join([*terms, f"{self._kind(path)} = 'string'"]) + ")", params

    def contains(self, path, value):
        in_array = f"({self._kind(path)} = 'array' AND {self.doc(path)} @> %s::jsonb)"
        params = [json.dumps([value])]
        if not isinstance(value, str):
            return f"({in_array})", params
        substring = f"({self._kind(path)} = 'string' AND strpos({self.text(path)}, %s) > 0)"
        return f"({substring} OR {in_array})", [value, *params]

    def sort_columns(self, path):
        kind, doc = self._kind(path), self.doc(path)
        rank = (
            f"CASE {kind} WHEN 'null' THEN 1 WHEN 'boolean' THEN "
            f"(CASE WHEN {doc} = 'true'::jsonb THEN 3 ELSE 2 END) WHEN 'number' THEN 4 "
            "WHEN 'string' THEN 5 WHEN 'array' THEN 6 WHEN 'object' THEN 7 ELSE 0 END"
        )
        number = f"CASE WHEN {kind} = 'number' THEN ({doc})::numeric END"
        text = f"CASE WHEN {kind} = 'string' THEN {self.text(path)} END"
        return [(rank, "rank"), (number, "numeric"), (text, "text")]

    def cursor_param(self, kind):
        return {"numeric": "CAST(%s AS numeric)", "text": '(%s COLLATE "C")'}.get(kind, "%s")

    def index_names(self, spec):
        return [spec.name, spec.name + "_s"]

    def index_create(self, spec):
        terms, _ = prefix_terms(spec.prefix, literal=True)
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        where = where.replace("%%", "%")
        create = "CREATE INDEX CONCURRENTLY IF NOT EXISTS"
        return [
            f'{create} "{spec.name}" ON kv_entry ({self.doc(spec.path)}, key){where}',
            f'{create} "{spec.name}_s" ON kv_entry ({self.text(spec.path)}, key){where}',
        ]

    def index_drop(self, spec):
        return [f'DROP INDEX CONCURRENTLY IF EXISTS "{n}"' for n in self.index_names(spec)]

    def explain(self, cursor, sql, params):
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(str(row[0]) for row in cursor.fetchall())


DIALECTS = {"sqlite": SqliteDialect(), "postgresql": PostgresDialect()}


def acl_term(caller: Caller) -> tuple[str | None, list]:
    """The read-permission test of kv.acl.caller_may, as SQL over owner, group and mode."""
    if caller.bypass:
        return None, []
    whens, params = [], []
    if caller.username is not None:
        whens.append(f"WHEN owner = %s THEN (mode & {mode_bit('owner', 'r')}) <> 0")
        params.append(caller.username)
    if caller.groups:
        groups = sorted(caller.groups)
        marks = ", ".join(["%s"] * len(groups))
        whens.append(f'WHEN "group" IN ({marks}) THEN (mode & {mode_bit("group", "r")}) <> 0')
        params.extend(groups)
    others = f"(mode & {mode_bit('others', 'r')}) <> 0"
    if not whens:
        return others, params
    return f"(CASE {' '.join(whens)} ELSE {others} END)", params


def compile_query(
    query: Query,
    *,
    dialect: Dialect,
    caller: Caller,
    now: int,
    indexes: list[IndexSpec],
    after: tuple[list, str] | None,
    force: bool = True,
) -> Compiled:
    """The SELECT for one page of `query`: `limit + 1` rows, so the caller knows if more follow.

    `after` is the decoded cursor: the sort values and key of the last row of the previous page.
    `indexes` are the ready indexes whose prefix covers the query's: their range terms are added
    as literals so that the database may use them (a partial index is used only when the query
    states its condition).
    """
    terms = [
        dialect.live,
        "(expires_at IS NULL OR expires_at > %s)",
        "(key < '_' OR key >= '`')",
    ]
    params: list = [now]
    own, own_params = prefix_terms(query.prefix, literal=False)
    terms += own
    params += own_params
    paths = {c.path for c in query.where} | {o.path for o in query.order_by}
    fitting = [spec for spec in indexes if spec.path in paths]
    servable = [
        spec for spec in fitting if any(c.path == spec.path and _servable(c) for c in query.where)
    ]
    forced = servable[0].name if servable and force else None
    for spec in fitting:
        literal, _ = prefix_terms(spec.prefix, literal=True)
        terms += [t for t in literal if t not in terms]
    for condition in query.where:
        sql, cond_params = dialect.condition(condition)
        terms.append(sql)
        params += cond_params
    acl, acl_params = acl_term(caller)
    if acl is not None:
        terms.append(acl)
        params += acl_params

    columns: list[tuple[str, str, bool]] = []  # expression, kind, descending
    for order in query.order_by:
        columns += [
            (expr, kind, order.descending) for expr, kind in dialect.sort_columns(order.path)
        ]
    if after is not None:
        values, key = after
        sql, cursor_params = _after_term(dialect, columns, values, key)
        terms.append(sql)
        params += cursor_params

    select = ", ".join(f'"{c}"' if c == "group" else c for c in ENTRY_COLUMNS)
    extra = "".join(f", {expr} AS s{i}" for i, (expr, _, _) in enumerate(columns))
    order = [f"s{i}{' DESC' if desc else ''}" for i, (_, _, desc) in enumerate(columns)]
    sql = (
        f"SELECT {select}{extra} FROM {dialect.table(forced)} WHERE {' AND '.join(terms)} "
        f"ORDER BY {', '.join([*order, 'key'])} LIMIT {query.limit + 1}"
    )
    return Compiled(
        sql=sql,
        params=params,
        sort_kinds=[kind for _, kind, _ in columns],
        indexes=[n for spec in fitting for n in dialect.index_names(spec)],
        forced=forced,
    )


def _servable(c: Condition) -> bool:
    """Whether an index of the condition's path can find the rows it matches."""
    if c.op in ("eq", "lt", "le", "gt", "ge", "prefix"):
        return True
    return c.op == "in" and len(c.value) == 1


def _after_term(dialect: Dialect, columns, values: list, key: str) -> tuple[str, list]:
    """Rows after (values, key) in the order of `columns`, then key ascending."""
    ors, params = [], []
    equal: list[str] = []
    equal_params: list = []
    for (expr, kind, desc), value in zip(columns, values, strict=True):
        mark = dialect.cursor_param(kind)
        if value is not None:
            ors.append("(" + " AND ".join([*equal, f"{expr} {'<' if desc else '>'} {mark}"]) + ")")
            params += [*equal_params, value]
            equal.append(f"{expr} = {mark}")
            equal_params.append(value)
        else:
            equal.append(f"{expr} IS NULL")
    ors.append("(" + " AND ".join([*equal, "key > %s"]) + ")")
    params += [*equal_params, key]
    return "(" + " OR ".join(ors) + ")", params
