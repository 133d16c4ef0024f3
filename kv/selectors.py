"""Reads from the store. Expired keys are invisible here even before the expiry task runs."""

import base64
import binascii
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from kvsite.exceptions import InvalidInput, NotFound

from . import rows
from .hlc import wall_ms
from .keys import key_validate, prefix_successor, prefix_validate
from .merkle import DIGEST_HEX, ZERO
from .models import Entry, EntryVersion, MerkleLeaf, StoreState

MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100


def live_entries(*, now: int | None = None) -> QuerySet[Entry]:
    """Entries that readers can see: no tombstones, nothing past its expiry."""
    now = wall_ms() if now is None else now
    return Entry.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), deleted=False)


def entry_get(*, key: str, now: int | None = None) -> Entry:
    """The live entry of `key`; raise NotFound if it is absent, deleted or expired."""
    key_validate(key)
    entry = rows.entry_by_key(key)
    if entry is None or not entry.is_live(wall_ms() if now is None else now):
        raise NotFound(f"No key {key!r}.")
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
    now: int | None = None,
) -> Page:
    """One page of live entries under `prefix` in key order.

    With a separator, keys deeper than one level are folded into `prefixes` ("directories"),
    each listed once; a page holds at most `limit` items and prefixes together.
    """
    prefix_validate(prefix)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}.")
    if separator is not None and separator == "":
        raise InvalidInput("separator must not be empty.")
    upper = prefix_successor(prefix) if prefix else None
    base = live_entries(now=now)
    if prefix:
        base = (
            base.filter(key__gte=prefix, key__lt=upper) if upper else base.filter(key__gte=prefix)
        )
    start, inclusive = prefix, True
    if cursor:
        kind, position = _cursor_decode(cursor)
        if kind == "d":
            start = prefix_successor(position) or position
        else:
            start, inclusive = position, False
    page = Page(items=[], next_cursor=None)
    last: tuple[str, str] = ("k", start)
    while True:
        room = limit - len(page.items) - len(page.prefixes)
        after = base.filter(key__gte=start) if inclusive else base.filter(key__gt=start)
        folded = None
        for row in after.order_by("key")[: room + 1]:
            if room == 0:  # the page is full and another row exists
                page.next_cursor = _cursor_encode(*last)
                return page
            rest = row.key[len(prefix) :]
            cut = rest.find(separator) if separator else -1
            room -= 1
            if cut == -1:
                page.items.append(row)
                last = ("k", row.key)
                continue
            folded = prefix + rest[: cut + len(separator)]
            page.prefixes.append(folded)
            last = ("d", folded)
            break
        else:
            return page  # no more rows
        start, inclusive = prefix_successor(folded), True
        if start is None:
            return page
        if room == 0:
            if base.filter(key__gte=start).exists():
                page.next_cursor = _cursor_encode(*last)
            return page


def entry_history(*, key: str, now: int | None = None) -> tuple[Entry, list[EntryVersion]]:
    """The stored entry of `key` and its previous versions, newest first; NotFound if never seen."""
    key_validate(key)
    entry = rows.entry_by_key(key)
    if entry is None:
        raise NotFound(f"No key {key!r} has ever been stored here.")
    previous = list(EntryVersion.objects.filter(key=key).order_by("-hlc", "-pk"))
    return entry, previous


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
