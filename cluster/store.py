"""Where a node keeps its member table: its database, or memory for in-process test nodes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from typing import Protocol

from django.db import transaction

from audit.services import EventIn, events_record

from .membership import MemberState, MemberTable
from .models import LocalNode, Member

STATE_FIELDS = [f.name for f in fields(MemberState)]


class MemberStore(Protocol):
    """Gives out the member table for one change at a time."""

    def locked(self) -> AbstractContextManager[MemberTable]:
        """The table, for reading and changing; changes are kept when the block exits cleanly."""
        ...


def member_state(row: Member) -> MemberState:
    """A database row as the state machine sees it."""
    return MemberState(**{name: getattr(row, name) for name in STATE_FIELDS})


class DbMemberStore:
    """The member table in this node's database; each `locked` block is one transaction."""

    def __init__(self, self_id: str) -> None:
        self.self_id = self_id

    @contextmanager
    def locked(self) -> Iterator[MemberTable]:
        with transaction.atomic():
            # Serializes membership changes on PostgreSQL; on SQLite every transaction already
            # takes the write lock at BEGIN (IMMEDIATE).
            list(LocalNode.objects.select_for_update().filter(pk=1).values_list("pk"))
            rows = {row.node_id: row for row in Member.objects.all()}
            table = MemberTable(self.self_id, [member_state(row) for row in rows.values()])
            yield table
            _save(table, rows)


def _save(table: MemberTable, rows: dict[str, Member]) -> None:
    """Write the rows of `table` that changed: update the known ones, insert the new ones, delete
    the forgotten ones."""
    new = []
    for node_id in sorted(table.changed):
        state = table.get(node_id).as_dict()
        if node_id in rows:
            Member.objects.filter(pk=rows[node_id].pk).update(**state)
        else:
            new.append(Member(**state))
    Member.objects.bulk_create(new)
    if table.removed:
        Member.objects.filter(node_id__in=table.removed).delete()
    events_record(_membership_events(table, rows))


def _membership_events(table: MemberTable, rows: dict[str, Member]) -> list[EventIn]:
    """Audit events for the members that joined the table, changed status or were forgotten
    (heartbeats and last-seen times are not membership changes)."""
    events = []
    for node_id in sorted(table.changed):
        state, old = table.get(node_id), rows.get(node_id)
        if old is None:
            detail = {"url": state.url, "status": state.status, "incarnation": state.incarnation}
            events.append(EventIn(action="member.join", target=node_id, detail=detail))
        elif old.status != state.status:
            detail = {"from": old.status, "to": state.status, "incarnation": state.incarnation}
            events.append(EventIn(action="member.status", target=node_id, detail=detail))
    for node_id in sorted(table.removed):
        if node_id in rows:
            events.append(EventIn(action="member.forget", target=node_id))
    return events


class MemoryMemberStore:
    """A member table in memory, for in-process nodes in tests."""

    def __init__(self, self_id: str) -> None:
        self.table = MemberTable(self_id)
        self._lock = threading.Lock()

    @contextmanager
    def locked(self) -> Iterator[MemberTable]:
        with self._lock:
            work = MemberTable(self.table.self_id, self.table.all())
            yield work
            self.table = work  # like a commit: an exception in the block changes nothing
