"""What other features report to the node's metrics: audit events, and when the last backup was
made. Two small calls, so that those features need to know nothing else of metrics:

- the audit service calls `audit_event_counted(action=...)` once per event it stores (after its
  transaction commits);
- the backups app registers, once per process (in its AppConfig.ready), the function that answers
  when the newest complete backup was made: `backup_time_source(newest_backup_at)`. It is read at
  every scrape, so the figure survives restarts (it comes from the backups themselves).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .metrics import Counter

OTHER_ACTION = "other"
_ACTION = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")  # e.g. "kv.put", "token.revoke", "login"

AUDIT_EVENTS = Counter(
    "kvs_audit_events_total", "Audit events this node recorded, by action.", ["action"]
)

BackupTimeSource = Callable[[], float | None]
_backup_time: BackupTimeSource | None = None


def audit_event_counted(*, action: str) -> None:
    """Count one audit event of `action` (an action name, never a key or a user: anything that
    does not look like one counts as `other`)."""
    AUDIT_EVENTS.labels(action if _ACTION.match(action) else OTHER_ACTION).inc()


def backup_time_source(source: BackupTimeSource) -> BackupTimeSource:
    """Use `source` for `kvs_backup_last_success_timestamp_seconds`: it answers when (seconds
    since the epoch) the newest complete backup of this node was made, or None if there is none.
    Returns `source`, so that it may serve as a decorator."""
    global _backup_time
    _backup_time = source
    return source


def backup_last_success() -> float | None:
    """When the newest complete backup was made (seconds since the epoch), if known."""
    return _backup_time() if _backup_time is not None else None
