"""The statements every write and single-key read runs, in plain SQL.

The ORM compiles each query anew, and on the PUT/GET path compiling costs more than executing.
These few statements are written once here, in SQL that SQLite and PostgreSQL both accept; all
other reads and writes use the ORM.
"""

import uuid

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from .fields import value_inflate
from .models import Entry, EntryVersion, MerkleLeaf, StoreState

_ENTRY = Entry._meta.db_table
_ENTRY_FIELDS = [f for f in Entry._meta.concrete_fields]
_ENTRY_NAMES = [f.attname for f in _ENTRY_FIELDS]
_ENTRY_COLUMNS = ", ".join(connection.ops.quote_name(f.column) for f in _ENTRY_FIELDS)
_ENTRY_WRITABLE = [f for f in _ENTRY_FIELDS if not f.primary_key]
_VERSION_INDEX = _ENTRY_NAMES.index("version")
_DELETED_INDEX = _ENTRY_NAMES.index("deleted")
_VALUE_INDEX = _ENTRY_NAMES.index("value")

_SELECT_ENTRY = (
    f"SELECT {_ENTRY_COLUMNS} FROM {_ENTRY} WHERE {connection.ops.quote_name('key')} = %s"
)
_STATE = StoreState._meta.db_table
_LEAF = MerkleLeaf._meta.db_table
_HISTORY = EntryVersion._meta.db_table
_HISTORY_FIELDS = [f for f in EntryVersion._meta.concrete_fields if not f.primary_key]


def _row_entry(row) -> Entry:
    values = list(row)
    version = values[_VERSION_INDEX]
    if not isinstance(version, uuid.UUID):
        values[_VERSION_INDEX] = uuid.UUID(version)
    values[_DELETED_INDEX] = bool(values[_DELETED_INDEX])
    values[_VALUE_INDEX] = value_inflate(values[_VALUE_INDEX])
    return Entry.from_db(connection.alias, _ENTRY_NAMES, values)


def entry_by_key(key: str) -> Entry | None:
    """The stored entry of `key` (live, expired or tombstone), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_SELECT_ENTRY, [key])
        row = cursor.fetchone()
    return None if row is None else _row_entry(row)


# Fields whose Python values (str, int, bool or None here) are query parameters as they are; the
# others (UUIDs, compressed values) go through the field. Exact types: a subclass may convert.
_PLAIN = {models.CharField, models.BigIntegerField, models.IntegerField, models.BooleanField,
          models.PositiveSmallIntegerField}  # fmt: skip


def _db_values(obj, fields) -> list:
    """The query parameters of `obj`'s `fields`, as Field.get_db_prep_save gives them."""
    db = connections[DEFAULT_DB_ALIAS]  # once, not through the proxy for every field
    return [
        getattr(obj, f.attname) if type(f) in _PLAIN else f.get_db_prep_save(
            getattr(obj, f.attname), db)
        for f in fields
    ]  # fmt: skip


def state_lock() -> StoreState:
    """The store state row, locked for the rest of the transaction (writes queue here).

    On SQLite every transaction begins IMMEDIATE, which already holds the database's write lock.
    """
    sql = f"SELECT hlc, revision, merkle_root FROM {_STATE} WHERE id = 1"
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    if row is None:  # a flushed database (the migration seeds this row)
        return StoreState.objects.create(pk=1)
    hlc, revision, root = row
    return StoreState(pk=1, hlc=hlc, revision=revision, merkle_root=root)


def state_save(state: StoreState) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_STATE} SET hlc = %s, revision = %s, merkle_root = %s WHERE id = 1",
            [state.hlc, state.revision, state.merkle_root],
        )


def leaf_hash(bucket: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hash FROM {_LEAF} WHERE bucket = %s", [bucket])
        row = cursor.fetchone()
    if row is None:  # a flushed database (the migration seeds every leaf)
        return MerkleLeaf.objects.create(bucket=bucket).hash
    return row[0]


def leaf_save(bucket: int, new_hash: str, count_delta: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE {_LEAF} SET hash = %s, "count" = "count" + %s WHERE bucket = %s',
            [new_hash, count_delta, bucket],
        )


# --- The batch forms (kv.batch): a few statements per batch, whatever its size --------------------

_q = connection.ops.quote_name
_CHUNK = 500  # rows per statement: well under SQLite's 32,766 parameters

_SELECT_ENTRIES = (
    f"SELECT {', '.join(f'e.{_q(f.column)}' for f in _ENTRY_FIELDS)}, "
    f"(SELECT COUNT(*) FROM {_HISTORY} h WHERE h.{_q('key')} = e.{_q('key')}) "
    f"FROM {_ENTRY} e WHERE e.{_q('key')} IN ({{marks}})"
)
# An update rewrites the entries of every index on a column it sets, changed or not, so the
# upsert sets only what a new version can change: never the key (the conflict target) nor the
# bucket (a function of the key), and the expiry index's columns only when a batch changes them.
_EXPIRY_COLUMNS = ("deleted", "expires_at")


def _upsert_sql(*, expiry: bool) -> str:
    sets = [
        f"{_q(f.column)} = excluded.{_q(f.column)}"
        for f in _ENTRY_WRITABLE
        if f.attname not in ("key", "bucket") and (expiry or f.attname not in _EXPIRY_COLUMNS)
    ]
    return (
        f"INSERT INTO {_ENTRY} ({', '.join(_q(f.column) for f in _ENTRY_WRITABLE)}) "
        f"VALUES {{rows}} ON CONFLICT ({_q('key')}) DO UPDATE SET {', '.join(sets)} "
        f"RETURNING id, {_q('key')}"
    )


_UPSERT_ENTRIES = {expiry: _upsert_sql(expiry=expiry) for expiry in (False, True)}
_ENTRY_ROW = "(" + ", ".join(["%s"] * len(_ENTRY_WRITABLE)) + ")"
_HISTORY_ROW = "(" + ", ".join(["%s"] * len(_HISTORY_FIELDS)) + ")"
_INSERT_HISTORY_MANY = "INSERT INTO {table} ({cols}) VALUES {{rows}}".format(
    table=_HISTORY, cols=", ".join(_q(f.column) for f in _HISTORY_FIELDS)
)
_TRIM_HISTORY_MANY = (
    f"DELETE FROM {_HISTORY} WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
    f"(PARTITION BY {_q('key')} ORDER BY hlc DESC, id DESC) AS n FROM {_HISTORY} "
    f"WHERE {_q('key')} IN ({{marks}})) ranked WHERE n > %s)"
)
_LEAF_ROW = "(CAST(%s AS INTEGER), CAST(%s AS TEXT), CAST(%s AS INTEGER))"
_UPDATE_LEAVES = (
    f'UPDATE {_LEAF} SET hash = v.column2, "count" = {_LEAF}."count" + v.column3 '
    f"FROM (VALUES {{rows}}) AS v WHERE {_LEAF}.bucket = v.column1"
)


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def entries_by_keys(keys: list[str]) -> dict[str, tuple[Entry, int]]:
    """The stored entries of `keys` (live, expired or tombstones), each with how many history
    versions its key holds."""
    found: dict[str, tuple[Entry, int]] = {}
    with connection.cursor() as cursor:
        for part in _chunks(keys):
            cursor.execute(_SELECT_ENTRIES.format(marks=", ".join(["%s"] * len(part))), part)
            for row in cursor.fetchall():
                entry = _row_entry(row[:-1])
                found[entry.key] = (entry, row[-1])
    return found


def entries_upsert(entries: list[Entry], *, expiry_changed: bool = True) -> dict[str, int]:
    """Insert or replace the rows of `entries` (distinct keys), by key; return the row id of
    each key. `expiry_changed=False` promises that no replaced row changes its `deleted` or
    `expires_at` (those columns are then left as stored)."""
    ids: dict[str, int] = {}
    sql = _UPSERT_ENTRIES[expiry_changed]
    with connection.cursor() as cursor:
        for part in _chunks(entries):
            values = [value for entry in part for value in _db_values(entry, _ENTRY_WRITABLE)]
            cursor.execute(sql.format(rows=", ".join([_ENTRY_ROW] * len(part))), values)
            ids.update((key, pk) for pk, key in cursor.fetchall())
    return ids


def history_insert(previous: list[Entry]) -> None:
    """Keep each of `previous` as a history version of its key."""
    if not previous:
        return
    with connection.cursor() as cursor:
        for part in _chunks(previous):
            values = [value for entry in part for value in _history_values(entry)]
            cursor.execute(
                _INSERT_HISTORY_MANY.format(rows=", ".join([_HISTORY_ROW] * len(part))), values
            )


_HISTORY_COLUMNS = ", ".join(_q(f.column) for f in _HISTORY_FIELDS)  # the entry's names too
_COPY_HISTORY = (
    f"INSERT INTO {_HISTORY} ({_HISTORY_COLUMNS}) SELECT {_HISTORY_COLUMNS} FROM {_ENTRY} "
    f"WHERE {_q('key')} IN ({{marks}})"
)


def history_copy(keys: list[str]) -> None:
    """Keep the stored rows of `keys` as history versions, copied by the database (before they
    are replaced): no value is read back, decoded or encoded again."""
    with connection.cursor() as cursor:
        for part in _chunks(keys):
            cursor.execute(_COPY_HISTORY.format(marks=", ".join(["%s"] * len(part))), part)


def _history_values(previous: Entry) -> list:
    version = EntryVersion(
        key=previous.key,
        value=previous.value,
        version=previous.version,
        hlc=previous.hlc,
        origin=previous.origin,
        actor=previous.actor,
        deleted=previous.deleted,
        expires_at=previous.expires_at,
        owner=previous.owner,
        group=previous.group,
        mode=previous.mode,
    )
    return _db_values(version, _HISTORY_FIELDS)


def history_trim(keys: list[str], *, depth: int) -> None:
    """Keep only the newest `depth` history versions of each of `keys`."""
    if not keys:
        return
    with connection.cursor() as cursor:
        for part in _chunks(keys):
            sql = _TRIM_HISTORY_MANY.format(marks=", ".join(["%s"] * len(part)))
            cursor.execute(sql, [*part, depth])


def leaves_hash(buckets: list[int]) -> dict[int, str]:
    """The hash of each of `buckets` (a missing leaf row, in a flushed database, is created)."""
    found: dict[int, str] = {}
    with connection.cursor() as cursor:
        for part in _chunks(buckets):
            marks = ", ".join(["%s"] * len(part))
            cursor.execute(f"SELECT bucket, hash FROM {_LEAF} WHERE bucket IN ({marks})", part)
            found.update(cursor.fetchall())
    for bucket in buckets:
        if bucket not in found:
            found[bucket] = MerkleLeaf.objects.create(bucket=bucket).hash
    return found


def leaves_save(changes: list[tuple[int, str, int]]) -> None:
    """Set each leaf (bucket, new hash, change of its record count), in one statement."""
    with connection.cursor() as cursor:
        for part in _chunks(changes):
            values = [value for change in part for value in change]
            cursor.execute(_UPDATE_LEAVES.format(rows=", ".join([_LEAF_ROW] * len(part))), values)
