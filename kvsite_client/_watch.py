"""What both clients' `watch()` share: reading server-sent events, the resume point on each node,
and the per-key order that keeps an older version from following a newer one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import error_for


def sse_frames(lines) -> Any:
    """Decode `data:` lines of a text/event-stream into frames (a generator over `lines`)."""
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:].strip())


@dataclass
class WatchState:
    """Where a watch is: the endpoint and node it reads, the revision it has on that node, and the
    newest version (its `hlc`, else its timestamp) it has yielded of each key.

    Revisions are per node: on the same endpoint a reconnect resumes after the last revision;
    on another, the watch starts from a fresh replay of the prefix (`since=0`) and drops what is
    not newer than what it has yielded already.
    """

    prefix: str
    since: int | None
    endpoint: str | None = None
    node: str | None = None
    newest: dict[str, tuple[int, str]] = field(default_factory=dict)

    def params(self, endpoint: str) -> dict[str, Any]:
        """The watch parameters for (re)connecting to `endpoint`."""
        if self.endpoint is not None and endpoint != self.endpoint:
            self.since, self.node = 0, None  # another node: its revisions are not ours
        self.endpoint = endpoint
        params: dict[str, Any] = {"prefix": self.prefix}
        if self.since is not None:
            params["since"] = self.since
        return params

    def take(self, frame: dict) -> dict | None:
        """The frame to yield, or None: ready frames update the state, error frames raise, and
        events whose key has a newer-or-equal version yielded already are dropped."""
        kind = frame.get("type")
        if kind == "error":
            raise error_for(int(frame.get("status", 500)), frame)
        revision = frame.get("revision")
        if kind == "ready":
            self.node = frame.get("node")
            self.since = max(self.since or 0, revision or 0)
            return frame
        if kind not in ("put", "delete"):
            return frame  # e.g. overflow: passed on
        if revision is not None:
            self.since = max(self.since or 0, revision)
        key = frame["key"]
        order = (frame.get("hlc") or frame.get("timestamp") or 0, frame.get("version") or "")
        seen = self.newest.get(key)
        if seen is not None and (order[0] < seen[0] or order == seen):
            return None
        if seen is not None and order[0] == seen[0]:
            return None  # the same clock on two versions: cannot tell which is newer; keep ours
        self.newest[key] = order
        return frame
