"""Restoring a backup into a node's database: verify the whole file first, then write every
record in one transaction, with the revision counter, Merkle leaves and root rebuilt from the
entries and checked against the header (any difference rolls everything back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import connection, transaction

from accounts.models import ApiToken, User
from cluster.models import LocalNode
from cluster.node import node_cache_clear
from kv.merkle import DIGEST_HEX, ZERO, bucket_of, record_digest
from kv.models import Entry, MerkleLeaf, StoreState
from kv.policy import policy_cache_clear
from kv.selectors import merkle_leaves, merkle_recompute
from kvsite.exceptions import Conflict

from .fileformat import HEADER, BackupDamaged, backup_lines
from .records import KINDS, Kind, field_values

CHUNK = 1000


@dataclass
class Verified:
    """What verifying a whole backup file found: its header and what it holds."""

    header: dict
    counts: dict[str, int] = field(default_factory=dict)
    merkle_root: str = ZERO


def backup_verify(path: Path) -> Verified:
    """Read the whole file and check it: header, every line, counts, trailer hash, and the Merkle
    root of its entries; raise BackupDamaged naming what is wrong."""
    verified: Verified | None = None
    root = 0
    for number, record in backup_lines(path):
        if verified is None:
            verified = Verified(header=record, counts=dict.fromkeys(KINDS, 0))
            continue
        kind = KINDS[record["kind"]]
        missing = [n for n in kind.fields if n not in record and n not in kind.optional]
        if missing:
            raise BackupDamaged(f"{path}: line {number}: a {kind.name} record without {missing[0]}")
        verified.counts[kind.name] += 1
        if kind.name == "entry":
            root ^= int(_digest(record), 16)
    assert verified is not None  # backup_lines raises on an empty file
    verified.merkle_root = f"{root:0{DIGEST_HEX}x}"
    header = verified.header
    expected = header.get("counts", {})
    for name, count in verified.counts.items():
        if expected.get(name) != count:
            raise BackupDamaged(
                f"{path}: the header counts {expected.get(name)!r} {name} records, "
                f"the file holds {count}"
            )
    if verified.merkle_root != header.get("merkle_root"):
        raise BackupDamaged(
            f"{path}: the entries' Merkle root {verified.merkle_root} is not the header's "
            f"{header.get('merkle_root')}"
        )
    return verified


def _digest(record: dict) -> str:
    return record_digest(
        key=record["key"], version=record["version"], hlc=record["hlc"], deleted=record["deleted"]
    )


def store_is_empty() -> bool:
    """Whether the node's database holds nothing yet (migrated, never started or written)."""
    return not (Entry.objects.exists() or User.objects.exists() or LocalNode.objects.exists())


def backup_restore(
    path: Path, *, force: bool = False, verified: Verified | None = None
) -> Verified:
    """Replace the node's data by the backup at `path`; return what was restored.

    Refuses (Conflict) a store that is not empty unless `force`; a damaged file (BackupDamaged)
    before anything is written (pass `verified` when `backup_verify` has just checked it). Writes
    in one transaction: on any failure nothing changes."""
    verified = verified or backup_verify(path)
    if not force and not store_is_empty():
        raise Conflict(
            "This node's store is not empty; restoring would replace it (use --force to do so)."
        )
    with transaction.atomic():
        _wipe()
        _write(path, verified)
        _state_write(verified)
        leaves, root = merkle_recompute()
        if root != verified.header["merkle_root"] or leaves != merkle_leaves():
            raise BackupDamaged(
                f"{path}: after the restore the Merkle root is {root}, not the backup's "
                f"{verified.header['merkle_root']}; nothing was restored"
            )
    node_cache_clear()
    policy_cache_clear()
    return verified


def _wipe() -> None:
    """Delete every record a backup holds (and sessions and admin log, which point at users),
    without signals: nothing of this may be mirrored into `_sys/` entries."""
    through = User.groups.through
    for model in (
        Session, LogEntry, ApiToken, through, User, Group.permissions.through, Group,
        *(KINDS[name].model for name in ("rule", "schema", "entry", "history", "member", "cursor")),
        LocalNode,
    ):  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")


def _write(path: Path, verified: Verified) -> None:
    """Insert every record of the file, CHUNK rows per statement batch; check the file is still
    the one verified (its hash is checked again by reading it to the end)."""
    pending: dict[str, list[dict]] = {}
    ids: dict[str, dict[str, int]] = {}
    for _number, record in backup_lines(path):
        kind = record["kind"]
        if kind == HEADER:
            continue
        if kind in ("user", "token") and "group" not in ids:
            _flush(pending, ids)
            ids["group"] = dict(Group.objects.values_list("name", "pk"))
        if kind == "token" and "user" not in ids:
            _flush(pending, ids)
            ids["user"] = dict(User.objects.values_list("username", "pk"))
        batch = pending.setdefault(kind, [])
        batch.append(record)
        if len(batch) >= CHUNK:
            _flush(pending, ids)
    _flush(pending, ids)


def _flush(pending: dict[str, list[dict]], ids: dict[str, dict[str, int]]) -> None:
    for name, records in pending.items():
        if records:
            _insert(KINDS[name], records, ids)
    pending.clear()


def _insert(kind: Kind, records: list[dict], ids: dict[str, dict[str, int]]) -> None:
    columns = [kind.model._meta.get_field(name).column for name in kind.fields]
    rows = [field_values(kind, record) for record in records]
    if kind.name == "entry":
        columns += ["digest", "bucket"]
        for row, record in zip(rows, records, strict=True):
            row += [_digest(record), bucket_of(record["key"])]
    elif kind.name == "token":
        columns.append("user_id")
        for row, record in zip(rows, records, strict=True):
            row.append(ids["user"][record["user"]])
    _insert_rows(kind.model._meta.db_table, columns, rows)
    if kind.name == "user":
        users = dict(User.objects.filter(username__in=[r["username"] for r in records])
                     .values_list("username", "pk"))  # fmt: skip
        memberships = [
            [users[record["username"]], ids["group"][group]]
            for record in records
            for group in record["groups"]
        ]
        _insert_rows(User.groups.through._meta.db_table, ["user_id", "group_id"], memberships)


def _insert_rows(table: str, columns: list[str], rows: list[list]) -> None:
    if not rows:
        return
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table), ", ".join(quote(c) for c in columns), ", ".join(["%s"] * len(columns))
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _state_write(verified: Verified) -> None:
    """The node's identity, revision counter, hlc, Merkle leaves and root, as the backup had
    them (leaves and root rebuilt from the restored entries)."""
    header = verified.header
    if header.get("node") is not None:
        LocalNode.objects.create(
            pk=1, node_id=header["node"], joined_at=header["joined_at"], syncing=False
        )
    leaves: dict[int, tuple[int, int]] = {}
    for bucket, digest in Entry.objects.values_list("bucket", "digest").iterator():
        value, count = leaves.get(bucket, (0, 0))
        leaves[bucket] = (value ^ int(digest, 16), count + 1)
    MerkleLeaf.objects.all().delete()
    MerkleLeaf.objects.bulk_create(
        MerkleLeaf(bucket=b, hash=f"{leaves.get(b, (0, 0))[0]:0{DIGEST_HEX}x}",
                   count=leaves.get(b, (0, 0))[1])
        for b in range(settings.KVS_MERKLE_BUCKETS)
    )  # fmt: skip
    StoreState.objects.update_or_create(
        pk=1,
        defaults={
            "hlc": header["hlc"],
            "revision": header["revision"],
            "merkle_root": header["merkle_root"],
        },
    )
