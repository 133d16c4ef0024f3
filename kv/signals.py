"""Sent after commit for every batch of applied versions, local or replicated (watch, push
replication, metrics and the system-record mirror hook here)."""

from typing import NamedTuple

from django.dispatch import Signal


class Change(NamedTuple):
    """One applied version: its key, local revision, whether a tombstone, and its writer node."""

    key: str
    revision: int
    deleted: bool
    origin: str


# kwargs: changes (list[Change], in revision order; one send per committed batch)
entries_applied = Signal()
