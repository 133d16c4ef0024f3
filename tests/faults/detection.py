"""P6: failure detection time and false suspicions, from what the nodes' member tables say.

A `MemberLog` polls every node's `GET /api/v1/cluster/members` and records each (observer,
member, status) it sees, with the monotonic time. From those samples:

- `detection_s`: seconds from a fault until every observer listed the member suspect (or dead,
  with `status="dead"`): how long the cluster takes to notice a node that stopped.
- `false_suspicions`: each time an observer began to list a member suspect or dead outside the
  windows where that member was really down (a stall longer than the suspicion timeout, a kill,
  and a grace period for the news of its return to spread). A stall shorter than the timeout, or
  CPU load, is not an excuse: a suspicion then is a false one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

NOT_ALIVE = ("suspect", "dead")


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    observer: str
    member: str
    status: str


class MemberLog:
    """Polls each node's member table every `interval` seconds until `stop()`."""

    def __init__(self, urls: dict[str, str], *, interval: float = 0.2) -> None:
        self.urls, self.interval = urls, interval  # node id → URL
        self.samples: list[Sample] = []
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> MemberLog:
        for node_id, url in self.urls.items():
            thread = threading.Thread(target=self._poll, args=(node_id, url), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _poll(self, observer: str, url: str) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._done.is_set():
                try:
                    members = client.get(f"{url}/api/v1/cluster/members").json()
                except (httpx.HTTPError, ValueError):
                    members = []  # a stopped or busy observer says nothing
                now = time.monotonic()
                for member in members:
                    if member["node_id"] != observer:
                        self.samples.append(
                            Sample(now, observer, member["node_id"], member["status"])
                        )
                self._done.wait(self.interval)


def detection_s(
    samples: Iterable[Sample],
    *,
    member: str,
    since: float,
    observers: Iterable[str],
    status: tuple[str, ...] = NOT_ALIVE,
) -> float | None:
    """Seconds from `since` until every one of `observers` had listed `member` with one of
    `status` (None if one of them never did)."""
    first: dict[str, float] = {}
    for sample in samples:
        if sample.member == member and sample.at >= since and sample.status in status:
            first.setdefault(sample.observer, sample.at)
    wanted = set(observers)
    if not wanted <= first.keys():
        return None
    return max(first[o] for o in wanted) - since


def false_suspicions(
    samples: Iterable[Sample], *, excused: dict[str, list[tuple[float, float]]] | None = None
) -> list[str]:
    """Each start of a suspicion (alive, or not yet seen, then suspect or dead) of a member by an
    observer outside that member's `excused` (start, end) windows."""
    excused = excused or {}
    last: dict[tuple[str, str], str] = {}
    found = []
    for sample in sorted(samples, key=lambda s: s.at):
        pair = (sample.observer, sample.member)
        before, last[pair] = last.get(pair), sample.status
        if sample.status not in NOT_ALIVE or before in NOT_ALIVE:
            continue
        windows = excused.get(sample.member, [])
        if any(start <= sample.at <= end for start, end in windows):
            continue
        found.append(
            f"P6 {sample.observer} listed {sample.member} {sample.status} at {sample.at:.1f}"
        )
    return found
