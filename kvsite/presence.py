"""Who is watching: this node's open watches (websocket and server-sent events) and pub/sub
subscriptions, each with its user, prefix or topic, `since` and when it connected.

Like pubsub.subscribers, each process keeps its open sockets in memory and a copy in the node's
Redis (kvsite.processbook): a process that died without closing its sockets drops out within
processbook.TTL_S. The cluster's list adds what every live peer answers to
`/cluster/internal/watchers` within KVS_GATHER_TIMEOUT, and names the peers that did not.
"""

from __future__ import annotations

import logging
import uuid

import orjson

from cluster.node import local_node
from kv.hlc import wall_ms

from .processbook import ProcessBook

log = logging.getLogger(__name__)

WATCHERS_PATH = "/cluster/internal/watchers"
PROCESSES_KEY = "kvs:presence:processes"
SOCKETS_KEY = "kvs:presence:sockets:{}"


class PresenceBook(ProcessBook):
    """This process's open watches and subscriptions, copied to Redis by a thread of its own."""

    processes_key = PROCESSES_KEY
    hash_key = SOCKETS_KEY
    what = "open sockets (presence)"

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, dict] = {}

    def opened(self, record: dict) -> str:
        """Note an open socket described by `record`; the id to close it with."""
        socket_id = uuid.uuid4().hex
        with self._lock:
            self._open[socket_id] = {"connected_at": wall_ms(), **record}
            self._touched()
        self._changed.set()
        return socket_id

    def closed(self, socket_id: str) -> None:
        with self._lock:
            self._open.pop(socket_id, None)
        self._changed.set()

    def records(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._open)

    def mapping(self) -> dict[str, bytes]:
        return {k: orjson.dumps(v) for k, v in self.records().items()}

    def clear(self) -> None:
        with self._lock:
            self._open.clear()


book = PresenceBook()


def _under(record: dict, prefix: str | None) -> bool:
    name = record.get("prefix") if record.get("kind") == "watch" else record.get("topic")
    return prefix is None or (isinstance(name, str) and name.startswith(prefix))


def watchers_local(*, prefix: str | None) -> list[dict]:
    """This node's open watches and subscriptions under `prefix` (None: all), every process's."""
    found = [orjson.loads(raw) for sockets in PresenceBook.hashes() for raw in sockets.values()]
    node = local_node().node_id
    return [{"node": node, **r} for r in found if _under(r, prefix)]


def watchers_answer_parse(answer: dict) -> list[dict]:
    """A peer's watchers; raise ValueError unless they are a list of records."""
    watchers = answer["watchers"]
    if not isinstance(watchers, list) or not all(
        isinstance(w, dict) and isinstance(w.get("kind"), str) for w in watchers
    ):
        raise ValueError("expected {watchers: [...]}")
    return watchers


def watchers_cluster(*, prefix: str | None, **gathering) -> dict:
    """Every node's open watches and subscriptions under `prefix`, and the live peers that did
    not answer. `gathering`: `peers`, `transport`, `timeout_s` for `cluster.gather.gather`."""
    from cluster.gather import gather

    watchers = watchers_local(prefix=prefix)
    gathered = gather(WATCHERS_PATH, {"prefix": prefix}, parse=watchers_answer_parse, **gathering)
    for answer in gathered.answers.values():
        watchers += [w for w in answer if _under(w, prefix)]
    watchers.sort(key=lambda w: (w.get("node") or "", w.get("connected_at") or 0))
    return {"watchers": watchers, "unreachable": gathered.unreachable}
