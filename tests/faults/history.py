"""A history of what concurrent clients asked of a cluster and what it answered, and a checker of
the properties that must hold once the cluster has healed.

Clients record every operation as it is invoked and as it completes: `ok` (acknowledged, with
the version and hlc the node answered), `fail` (a definite refusal: 4xx, 503) or `unknown` (no
answer: a timeout, a dropped connection; the write may or may not have happened). Watch streams
record each event they receive and each reconnect. After healing, the final state of every key
is read from every node (`GET /api/v1/history/{key}`: the current version, tombstone included,
with its hlc and origin), and `check` verifies:

- P1: every acknowledged write is visible, or superseded by a version higher in the cluster's
  version order (`kv.versions.version_order`: hlc, then the origin's join time, then the id).
- P3: no deleted key comes back: after an acknowledged delete on node N, the key's final state is
  not a version at most as high as a write acknowledged on N before the delete was invoked (a
  node's hlc only grows, so the delete's tombstone is above every such write).
- P5: each watch stream delivers events in revision order (so per key in version order), with no
  duplicates, resumes exactly where it stopped (`since` = the last revision it had), and ends on
  each key's final state on its node (no change silently skipped across a reconnect).
P2 (Merkle roots equal within T) is measured by the scenario itself.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from kv.versions import version_order

PUT, DELETE, CAS = "put", "delete", "cas"
OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass
class Op:
    """One client operation: invoked at `invoked`, completed at `completed` (monotonic s)."""

    client: str
    node: str  # the node id the request went to (the version's origin when it is a write)
    kind: str
    key: str
    value: object = None
    invoked: float = 0.0
    completed: float | None = None
    outcome: str | None = None
    status: int | None = None
    version: str | None = None
    hlc: int | None = None


@dataclass(frozen=True)
class Final:
    """A key's current version on one node, as its history endpoint gives it (None: absent)."""

    version: str
    hlc: int
    origin: str
    deleted: bool


@dataclass
class Stream:
    """One watch: the events it received and the reconnects it made, in order."""

    name: str
    node: str
    prefix: str
    events: list[dict] = field(default_factory=list)
    # (index in events before which it reconnected, the `since` it asked for)
    reconnects: list[tuple[int, int]] = field(default_factory=list)
    ready: int | None = None  # the revision of the first `ready`


class History:
    """Operations and watch streams, recorded from many threads."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.streams: list[Stream] = []
        self._lock = threading.Lock()

    def invoke(self, *, client: str, node: str, kind: str, key: str, value: object = None) -> Op:
        op = Op(client, node, kind, key, value, invoked=time.monotonic())
        with self._lock:
            self.ops.append(op)
        return op

    def complete(
        self,
        op: Op,
        outcome: str,
        *,
        status: int | None = None,
        version: str | None = None,
        hlc: int | None = None,
    ) -> None:
        op.completed, op.outcome, op.status = time.monotonic(), outcome, status
        op.version, op.hlc = version, hlc

    def stream(self, *, name: str, node: str, prefix: str) -> Stream:
        stream = Stream(name, node, prefix)
        with self._lock:
            self.streams.append(stream)
        return stream

    def keys(self) -> set[str]:
        return {op.key for op in self.ops}


@dataclass
class Report:
    operations: int = 0
    acknowledged: int = 0
    unknown: int = 0
    lost: list[str] = field(default_factory=list)  # P1
    resurrected: list[str] = field(default_factory=list)  # P3
    stream_faults: list[str] = field(default_factory=list)  # P5

    @property
    def ok(self) -> bool:
        return not (self.lost or self.resurrected or self.stream_faults)

    def summary(self) -> str:
        lines = [
            f"{self.operations} operations, {self.acknowledged} acknowledged, "
            f"{self.unknown} without an answer; {len(self.lost)} lost, "
            f"{len(self.resurrected)} resurrected, {len(self.stream_faults)} watch faults"
        ]
        lines += self.lost[:10] + self.resurrected[:10] + self.stream_faults[:10]
        return "\n".join(lines)


def check(
    history: History,
    finals: dict[str, dict[str, Final | None]],
    *,
    joined_at: dict[str, int],
) -> Report:
    """Check P1, P3 and P5 against `finals` (node id → key → its final version there) and the
    nodes' join times (node id → joined_at, for the version order)."""

    def order(version: str, hlc: int, origin: str) -> tuple[int, int, int]:
        return version_order(hlc=hlc, origin_joined_at=joined_at[origin], version=version)

    report = Report(operations=len(history.ops))
    acked = [op for op in history.ops if op.outcome == OK]
    report.acknowledged = len(acked)
    report.unknown = sum(op.outcome in (None, UNKNOWN) for op in history.ops)
    writes = defaultdict(list)  # key → acknowledged PUT/cas
    for op in acked:
        if op.kind in (PUT, CAS):
            writes[op.key].append(op)

    for node, state in finals.items():
        # P1
        for key, ops in writes.items():
            final = state.get(key)
            for op in ops:
                if final is None:
                    report.lost.append(f"P1 {node}: {key} absent, {_op(op)} was acknowledged")
                elif final.version != op.version and order(
                    final.version, final.hlc, final.origin
                ) <= order(op.version, op.hlc, op.node):
                    report.lost.append(
                        f"P1 {node}: {key} is {final.version} (hlc {final.hlc}), "
                        f"not {_op(op)} nor anything higher"
                    )
        # P3
        for op in acked:
            if op.kind != DELETE:
                continue
            final = state.get(op.key)
            if final is None or final.deleted:
                continue
            before = [
                w
                for w in writes[op.key]
                if w.node == op.node and w.completed is not None and w.completed < op.invoked
            ]
            if not before:
                continue
            newest = max(order(w.version, w.hlc, w.node) for w in before)
            if order(final.version, final.hlc, final.origin) <= newest:
                report.resurrected.append(
                    f"P3 {node}: {op.key} is live again at {final.version} (hlc {final.hlc}) "
                    f"after {_op(op)}"
                )

    for stream in history.streams:
        report.stream_faults += _check_stream(stream, finals.get(stream.node, {}))
    return report


def _check_stream(stream: Stream, final: dict[str, Final | None]) -> list[str]:
    faults = []
    seen: set[tuple[str, str]] = set()
    last_revision = stream.ready
    last_hlc: dict[str, int] = {}
    last_event: dict[str, dict] = {}
    resumes = dict(stream.reconnects)
    for index, event in enumerate(stream.events):
        if index in resumes:
            since = resumes[index]
            if last_revision is not None and since != last_revision:
                faults.append(
                    f"P5 {stream.name}: resumed from {since}, the last revision it had is "
                    f"{last_revision}"
                )
        revision, key = event["revision"], event["key"]
        if (key, event["version"]) in seen:
            faults.append(f"P5 {stream.name}: {key} {event['version']} delivered twice")
        seen.add((key, event["version"]))
        if last_revision is not None and revision <= last_revision:
            faults.append(f"P5 {stream.name}: revision {revision} after {last_revision} ({key})")
        if key in last_hlc and event["hlc"] <= last_hlc[key]:
            faults.append(
                f"P5 {stream.name}: {key} hlc {event['hlc']} after {last_hlc[key]} (out of order)"
            )
        last_revision = max(revision, last_revision or 0)
        last_hlc[key] = max(event["hlc"], last_hlc.get(key, 0))
        last_event[key] = event
    for key, version in final.items():
        if not key.startswith(stream.prefix) or version is None:
            continue
        event = last_event.get(key)
        if event is None or event["version"] != version.version:
            got = "nothing" if event is None else event["version"]
            faults.append(
                f"P5 {stream.name}: {key} ends at {version.version} on {stream.node}, "
                f"the stream's last event for it is {got} (a change was skipped)"
            )
    return faults


def _op(op: Op) -> str:
    return f"{op.kind} by {op.client} on {op.node} ({op.version}, hlc {op.hlc})"
