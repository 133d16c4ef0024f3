"""The last anti-entropy round with each peer, kept in one row per peer (cheap to write after
every round, durable across restarts), for the cluster's health view."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import DatabaseError

from kv.hlc import wall_ms

from .models import AntiEntropyRound

if TYPE_CHECKING:
    from .antientropy import SyncReport

log = logging.getLogger(__name__)


def antientropy_round_record(
    *, peer: str, report: SyncReport | None, seconds: float, now: int | None = None
) -> None:
    """Remember the round just ended with `peer`: what it found, or None if it failed. A store
    too busy to take the row loses only this record, never the round."""
    fields = {"at": wall_ms() if now is None else now, "seconds": round(seconds, 6), "ok": False}
    if report is not None:
        fields |= {
            "ok": True,
            "equal": report.equal,
            "differing_buckets": len(report.buckets),
            "pulled": report.pulled,
            "pushed": report.pushed,
            "bytes": report.bytes_sent + report.bytes_received,
        }
    else:
        fields |= {"equal": False, "differing_buckets": 0, "pulled": 0, "pushed": 0, "bytes": 0}
    try:
        AntiEntropyRound.objects.update_or_create(peer=peer, defaults=fields)
    except DatabaseError as error:
        log.warning("could not record the anti-entropy round with %s: %s", peer, error)


def round_out(row: AntiEntropyRound) -> dict:
    return {
        "peer": row.peer,
        "at": row.at,
        "ok": row.ok,
        "equal": row.equal,
        "differing_buckets": row.differing_buckets,
        "keys_repaired": row.pulled + row.pushed,
        "pulled": row.pulled,
        "pushed": row.pushed,
        "bytes": row.bytes,
        "seconds": row.seconds,
    }


def antientropy_rounds() -> dict[str, dict]:
    """The last round with each peer, by peer id."""
    return {row.peer: round_out(row) for row in AntiEntropyRound.objects.order_by("peer")}


def antientropy_last() -> dict | None:
    """The most recent round with any peer, or None before the first."""
    row = AntiEntropyRound.objects.order_by("-at").first()
    return None if row is None else round_out(row)
