"""Reads from the store. Expired keys are invisible here even before the expiry task runs."""

import base64
import binascii
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from kvsite.exceptions import Forbidden, InvalidInput, NotFound

from . import rows
from .acl import SYSTEM, Caller, caller_may
from .hlc import wall_ms
from .keys import key_validate, prefix_successor, prefix_validate
from .merkle import DIGEST_HEX, ZERO
from .models import Entry, EntryVersion, MerkleLeaf, StoreState
from .versions import Version

MAX_LIST_LIMIT = 1000
RESERVED_FIRST, RESERVED_AFTER = "_", "`"  # keys starting with "_" sort in between
DEFAULT_LIST_LIMIT = 100


def live_entries(*, now: int | None = None) -> QuerySet[Entry]:
    """Entries that readers can see: no tombstones, nothing past its expiry, no reserved keys
    (the `_…` keys hold the cluster's own records)."""
    now = wall_ms() if now is None else now
    return Entry.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        Q(key__lt=RESERVED_FIRST) | Q(key__gte=RESERVED_AFTER),
        deleted=False,
    )


def entry_get(*, key: str, caller: Caller = SYSTEM, now: int | None = None) -> Entry:
    """The live entry of `key`; NotFound if absent, deleted or expired; Forbidden if unreadable."""
    key_validate(key)
    entry = rows.entry_by_key(key)
    if entry is None or not entry.is_live(wall_ms() if now is None else now):
        raise NotFound(f"No key {key!r}.")
    if not entry_readable(caller, entry):
        raise Forbidden(f"The mode of {key!r} does not grant you read.")
    return entry


@dataclass
class Page:
    items: list[Entry]
    next_cursor: str | None
    prefixes: list[str] = field(default_factory=list)


def _cursor_encode(kind: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, position = raw.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("Invalid cursor: pass next_cursor from a previous page.") from None
    if kind not in ("k", "d"):
        raise InvalidInput("Invalid cursor: pass next_cursor from a previous page.")
    return kind, position


def entries_under(
    *,
    prefix: str = "",
    limit: int = DEFAULT_LIST_LIMIT,
    cursor: str | None = None,
    separator: str | None = None,
    caller: Caller = SYSTEM,
    now: int | None = None,
) -> Page:
    """One page of the live entries under `prefix` that `caller` may read, in key order.

    With a separator, keys deeper than one level are folded into `prefixes` ("directories"),
    each listed once and only if the caller may read a key in it; a page holds at most `limit`
    items and prefixes together.
    """
    prefix_validate(prefix)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}.")
    if separator is not None and separator == "":
        raise InvalidInput("separator must not be empty.")
    base = live_entries(now=now)
    if prefix:
        upper = prefix_successor(prefix)
        base = (
            base.filter(key__gte=prefix, key__lt=upper) if upper else base.filter(key__gte=prefix)
        )
    start, inclusive = prefix, True
    if cursor:
        kind, position = _cursor_decode(cursor)
        start, inclusive = (
            (prefix_successor(position) or position, True)
            if kind == "d"
            else (
                position,
                False,
            )
        )
    page = Page(items=[], next_cursor=None)
    last: tuple[str, str] | None = None
    batch = limit + 1
    while True:
        after = base.filter(key__gte=start) if inclusive else base.filter(key__gt=start)
        rows_ = list(after.order_by("key")[:batch])
        folded = None
        for row in rows_:
            start, inclusive = row.key, False
            if not entry_readable(caller, row):
                continue
            if len(page.items) + len(page.prefixes) == limit:
                page.next_cursor = _cursor_encode(*last)
                return page
            rest = row.key[len(prefix) :]
            cut = rest.find(separator) if separator else -1
            if cut == -1:
                page.items.append(row)
                last = ("k", row.key)
                continue
            folded = prefix + rest[: cut + len(separator)]
            page.prefixes.append(folded)
            last = ("d", folded)
            break
        if folded is not None:
            seek = prefix_successor(folded)
            if seek is None:
                return page
            start, inclusive = seek, True
        elif len(rows_) < batch:
            return page


def entry_readable(caller: Caller, entry: Entry | EntryVersion) -> bool:
    """Whether the record's mode lets `caller` read it."""
    return caller_may(caller, "r", owner=entry.owner, group=entry.group, mode=entry.mode)


def entry_history(*, key: str, caller: Caller = SYSTEM) -> tuple[Entry, list[EntryVersion]]:
    """The stored entry of `key` and the previous versions `caller` may read, newest first.

    NotFound if the key was never stored here; Forbidden if its current mode denies reading.
    """
    key_validate(key)
    entry = rows.entry_by_key(key)
    if entry is None:
        raise NotFound(f"No key {key!r} has ever been stored here.")
    if not entry_readable(caller, entry):
        raise Forbidden(f"The mode of {key!r} does not grant you read.")
    previous = EntryVersion.objects.filter(key=key).order_by("-hlc", "-pk")
    return entry, [v for v in previous if entry_readable(caller, v)]


def store_state() -> StoreState:
    """The node's revision counter, hlc and Merkle root."""
    return StoreState.objects.get(pk=1)


def live_key_count(*, now: int | None = None) -> int:
    return live_entries(now=now).count()


def merkle_recompute() -> tuple[dict[int, str], str]:
    """Leaf hashes and root computed from scratch from the entries (non-zero leaves only)."""
    leaves: dict[int, int] = {}
    for bucket, digest in Entry.objects.values_list("bucket", "digest").iterator():
        leaves[bucket] = leaves.get(bucket, 0) ^ int(digest, 16)
    root = 0
    for value in leaves.values():
        root ^= value
    return (
        {b: f"{v:0{DIGEST_HEX}x}" for b, v in leaves.items() if v},
        f"{root:0{DIGEST_HEX}x}",
    )


def merkle_leaves() -> dict[int, str]:
    """The maintained non-zero leaf hashes."""
    return dict(MerkleLeaf.objects.exclude(hash=ZERO).values_list("bucket", "hash"))


def changes_since(*, revision: int, limit: int) -> tuple[list[Entry], int]:
    """Up to `limit` entries whose last change came after `revision`, in revision order, and the
    highest revision among them (`revision` itself when there are none)."""
    changed = list(Entry.objects.filter(revision__gt=revision).order_by("revision")[:limit])
    return changed, changed[-1].revision if changed else revision


def bucket_digests(*, buckets: list[int]) -> list[tuple[str, str, int, int]]:
    """`(key, version, hlc, origin_joined_at)` of every record in `buckets` (tombstones too)."""
    rows = Entry.objects.filter(bucket__in=buckets).values_list(
        "key", "version", "hlc", "origin_joined_at"
    )
    return [(key, str(version), hlc, joined) for key, version, hlc, joined in rows]


def versions_of(*, keys: list[str]) -> list[Version]:
    """The stored versions (tombstones too) of `keys` that this node has."""
    return [Version.of(entry) for entry in Entry.objects.filter(key__in=keys)]


def tombstone_count() -> int:
    """How many tombstones this node keeps (until KVS_TOMBSTONE_TTL purges them)."""
    return Entry.objects.filter(deleted=True).count()


def change_after(*, revision: int) -> int | None:
    """The hlc of the oldest change this node has applied after `revision`, or None."""
    return (
        Entry.objects.filter(revision__gt=revision)
        .order_by("revision")
        .values_list("hlc", flat=True)
        .first()
    )
