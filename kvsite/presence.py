"""Who is watching: this node's open watches (websocket and server-sent events) and pub/sub
subscriptions, each with its user, prefix or topic, `since` and when it connected.

Like pubsub.subscribers, each process keeps its open sockets in memory and a copy in the node's
Redis, in a hash that expires unless the process refreshes it (every REFRESH_S, and soon after
each change); a set lists the node's processes. A process that died without closing its sockets
drops out within TTL_S. The cluster's list adds what every live peer answers to
`/cluster/internal/watchers` within KVS_GATHER_TIMEOUT, and names the peers that did not.
"""

from __future__ import annotations

import logging
import threading
import uuid

import orjson
import redis

from cluster.node import local_node
from kv.hlc import wall_ms

log = logging.getLogger(__name__)

WATCHERS_PATH = "/cluster/internal/watchers"
PROCESSES_KEY = "kvs:presence:processes"
SOCKETS_KEY = "kvs:presence:sockets:{}"
REFRESH_S = 5.0
TTL_S = 15
COALESCE_S = 0.05


def redis_client() -> redis.Redis:
    """This process's client of the node's Redis (the one pub/sub counts subscribers in)."""
    from pubsub import subscribers

    return subscribers.redis_client()


class PresenceBook:
    """This process's open watches and subscriptions, copied to Redis by a thread of its own."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        self._open: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None
        self._stored_empty = False

    def opened(self, record: dict) -> str:
        """Note an open socket described by `record`; the id to close it with."""
        socket_id = uuid.uuid4().hex
        with self._lock:
            self._open[socket_id] = {"connected_at": wall_ms(), **record}
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
        self._changed.set()
        return socket_id

    def closed(self, socket_id: str) -> None:
        with self._lock:
            self._open.pop(socket_id, None)
        self._changed.set()

    def records(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._open)

    def clear(self) -> None:
        with self._lock:
            self._open.clear()

    def _run(self) -> None:
        while True:
            self._changed.wait(REFRESH_S)
            self._changed.clear()
            self._changed.wait(COALESCE_S)
            self._changed.clear()
            try:
                self.write()
            except redis.RedisError:  # presence is advisory; the next refresh tries again
                log.warning("presence: could not store the open sockets", exc_info=True)

    def write(self) -> None:
        """Store this process's open sockets in Redis (and keep them from expiring)."""
        key = SOCKETS_KEY.format(self.process)
        records = self.records()
        if not records and self._stored_empty:
            return
        pipe = redis_client().pipeline()
        pipe.delete(key)
        if records:
            pipe.hset(key, mapping={k: orjson.dumps(v) for k, v in records.items()})
            pipe.expire(key, TTL_S)
        pipe.sadd(PROCESSES_KEY, self.process)
        pipe.execute()
        self._stored_empty = not records


book = PresenceBook()


def _under(record: dict, prefix: str | None) -> bool:
    name = record.get("prefix") if record.get("kind") == "watch" else record.get("topic")
    return prefix is None or (isinstance(name, str) and name.startswith(prefix))


def watchers_local(*, prefix: str | None) -> list[dict]:
    """This node's open watches and subscriptions under `prefix` (None: all), every process's."""
    client = redis_client()
    processes = sorted(p.decode() for p in client.smembers(PROCESSES_KEY))
    pipe = client.pipeline()
    for process in processes:
        pipe.hgetall(SOCKETS_KEY.format(process))
    found, gone = [], []
    for process, sockets in zip(processes, pipe.execute(), strict=True):
        if not sockets:
            gone.append(process)
        found += [orjson.loads(raw) for raw in sockets.values()]
    if gone:
        client.srem(PROCESSES_KEY, *gone)  # a live process with none adds itself back
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
