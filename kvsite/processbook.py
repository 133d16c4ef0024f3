"""A process's share of a node-wide record in Redis: each process keeps its part in memory and a
copy in a Redis hash that expires unless the process refreshes it (every REFRESH_S, and soon
after each change); a set lists the node's processes. Readers sum every live process's hash, so
a process that died without cleaning up drops out within TTL_S. Used by pub/sub's subscriber
counts (pubsub.subscribers) and by watch presence (kvsite.presence)."""

from __future__ import annotations

import logging
import threading
import uuid
from functools import lru_cache

import redis
from django.conf import settings

log = logging.getLogger(__name__)

REFRESH_S = 5.0
TTL_S = 15
COALESCE_S = 0.05  # changes of the next few milliseconds share one write


@lru_cache(maxsize=4)
def _redis_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    """This process's client of the node's Redis."""
    return _redis_for(settings.REDIS_URL)


class ProcessBook:
    """Subclasses say where (`processes_key`, `hash_key` with {} for the process) and what
    (`mapping()`: the hash to store, under the subclass's own lock `self._lock`)."""

    processes_key: str
    hash_key: str
    what = "records"

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex
        self._lock = threading.Lock()
        # One write() at a time: the one that reads the mapping last also stores it last, so a
        # slower write of an older mapping never replaces a newer one in Redis.
        self._write_lock = threading.Lock()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None
        self._stored_empty = False

    def mapping(self) -> dict:
        raise NotImplementedError

    def _touched(self) -> None:
        """Call after a change (holding self._lock): starts the refresher, wakes it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._changed.wait(REFRESH_S)
            self._changed.clear()
            self._changed.wait(COALESCE_S)
            self._changed.clear()
            try:
                self.write()
            except redis.RedisError:  # advisory; the next refresh tries again
                log.warning("could not store this process's %s", self.what, exc_info=True)

    def write(self) -> None:
        """Store this process's hash in Redis (and keep it from expiring)."""
        key = self.hash_key.format(self.process)
        with self._write_lock:
            mapping = self.mapping()
            if not mapping and self._stored_empty:
                return  # nothing to keep from expiring
            pipe = redis_client().pipeline()
            pipe.delete(key)
            if mapping:
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, TTL_S)
            pipe.sadd(self.processes_key, self.process)
            pipe.execute()
            self._stored_empty = not mapping

    @classmethod
    def hashes(cls) -> list[dict]:
        """Every live process's hash on this node (raw bytes); forgets the processes gone."""
        client = redis_client()
        processes = sorted(p.decode() for p in client.smembers(cls.processes_key))
        pipe = client.pipeline()
        for process in processes:
            pipe.hgetall(cls.hash_key.format(process))
        found, gone = [], []
        for process, stored in zip(processes, pipe.execute(), strict=True):
            if not stored:
                gone.append(process)
            found.append(stored)
        if gone:
            client.srem(cls.processes_key, *gone)  # a live process with none adds itself back
        return found
