"""Taking a snapshot: every record of the node, read in one read transaction while the node keeps
serving, streamed into a BackupWriter chunk by chunk (never the whole store in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from cluster.models import LocalNode
from kv.hlc import wall_ms
from kv.models import StoreState
from kv.selectors import live_entries

from .fileformat import KINDS as ORDER
from .fileformat import BackupWriter
from .records import KINDS, Kind, to_record

CHUNK = 2000


@contextmanager
def read_snapshot() -> Iterator[None]:
    """One consistent read of the database for the block, without blocking writers.

    SQLite (WAL): a DEFERRED transaction, whose snapshot starts at its first read (the settings
    make Django's own transactions IMMEDIATE, which would hold the write lock). PostgreSQL:
    REPEATABLE READ, READ ONLY. Already inside a transaction (tests), that one is the snapshot.
    """
    if connection.in_atomic_block:
        yield
        return
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def snapshot_header(*, now: int | None = None) -> dict:
    """What the header says: node, revision, hlc, Merkle root, counts (read in the snapshot)."""
    state = StoreState.objects.filter(pk=1).first() or StoreState(pk=1)
    node = LocalNode.objects.filter(pk=1).first()
    return {
        "node": node.node_id if node else None,
        "joined_at": node.joined_at if node else None,
        "revision": state.revision,
        "hlc": state.hlc,
        "merkle_root": state.merkle_root,
        "created_at": wall_ms() if now is None else now,
        "database": connection.vendor,
        "keys": live_entries().count(),
        "counts": {name: KINDS[name].model.objects.count() for name in ORDER},
    }


def snapshot_write(writer: BackupWriter, *, now: int | None = None) -> dict:
    """Write the header and every record into `writer`, all from one snapshot; the header."""
    with read_snapshot():
        header = snapshot_header(now=now)
        writer.header(header)
        for name in ORDER:
            for record in _records(KINDS[name]):
                writer.record(name, record)
    return header


def _records(kind: Kind) -> Iterator[dict]:
    """The kind's rows as records, read CHUNK rows at a time in `kind.order` (keyset paging)."""
    extra = {"user": ("pk",), "token": ("user__username",)}.get(kind.name, ())
    rows = kind.model.objects.order_by(kind.order).values_list(kind.order, *kind.fields, *extra)
    last = None
    while True:
        chunk = list(
            (rows.filter(**{f"{kind.order}__gt": last}) if last is not None else rows)[:CHUNK]
        )
        if not chunk:
            return
        last = chunk[-1][0]
        groups = _user_groups([row[-1] for row in chunk]) if kind.name == "user" else {}
        for row in chunk:
            record = to_record(kind, row[1 : 1 + len(kind.fields)])
            if kind.name == "user":
                record["groups"] = sorted(groups.get(row[-1], ()))
            elif kind.name == "token":
                record["user"] = row[-1]
            yield record


def _user_groups(user_ids: list[int]) -> dict[int, list[str]]:
    from accounts.models import User

    names: dict[int, list[str]] = {}
    memberships = User.groups.through.objects.filter(user_id__in=user_ids)
    for user_id, group in memberships.values_list("user_id", "group__name"):
        names.setdefault(user_id, []).append(group)
    return names
