"""Concurrent clients and watch streams against a running cluster, recording a History; and what
the checker needs once the cluster has healed (final states, join times, Merkle convergence).

Each client works on keys of its own (`{prefix}{client}/{i}`, prefix `f/` by default) through
one node: PUT, PUT with `cas` (the version it last wrote there, or 0 when the key is absent) and
DELETE. Each node has one SSE watch of the prefix that reconnects to the same node from the last
revision it had.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .history import CAS, DELETE, FAIL, OK, PUT, UNKNOWN, Final, History, Stream

PREFIX = "f/"
TIMEOUT_S = 3.0


@dataclass
class Node:
    node_id: str
    url: str


def nodes_of(urls: list[str]) -> list[Node]:
    """Each URL with the node id its /health states."""
    return [Node(httpx.get(f"{url}/health", timeout=10).json()["node_id"], url) for url in urls]


class Workload:
    """Clients and watches on every node until `stop()`."""

    def __init__(
        self,
        nodes: list[Node],
        token: str | None,
        *,
        clients_per_node: int = 2,
        keys_per_client: int = 5,
        seed: int = 1,
        pause_s: float = 0.02,
        prefix: str = PREFIX,
    ) -> None:
        self.nodes, self.token = nodes, token
        self.history = History()
        self.stopping = threading.Event()
        self.watch_stop = threading.Event()
        self.keys_per_client, self.pause_s, self.prefix = keys_per_client, pause_s, prefix
        self.rng = random.Random(seed)
        self.threads: list[threading.Thread] = []
        self.clients = [
            (f"{node.node_id}c{index}", node)
            for node in nodes
            for index in range(1, clients_per_node + 1)
        ]

    def headers(self) -> dict[str, str]:
        return _auth(self.token)

    def start(self) -> None:
        for node in self.nodes:
            stream = self.history.stream(
                name=f"watch@{node.node_id}", node=node.node_id, prefix=self.prefix
            )
            self._spawn(self._watch, node, stream)
        for name, node in self.clients:
            self._spawn(self._client, name, node, random.Random(self.rng.random()))

    def _spawn(self, target: Callable, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop_clients(self) -> None:
        self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()
        self.watch_stop.set()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT_S + 5)

    # --- clients -----------------------------------------------------------------------------

    def _client(self, name: str, node: Node, rng: random.Random) -> None:
        current: dict[str, str | None] = {}  # key → the version this client last saw acknowledged
        with httpx.Client(base_url=node.url, headers=self.headers(), timeout=TIMEOUT_S) as api:
            while not self.stopping.is_set():
                key = f"{self.prefix}{name}/{rng.randrange(self.keys_per_client)}"
                roll = rng.random()
                if roll < 0.2 and current.get(key):
                    self._delete(api, name, node, key, current)
                elif roll < 0.4:
                    self._put(api, name, node, key, current, cas=current.get(key) or "0")
                else:
                    self._put(api, name, node, key, current, cas=None)
                time.sleep(self.pause_s)

    def _put(self, api, name, node, key, current, *, cas: str | None) -> None:
        value = {"by": name, "n": time.monotonic_ns()}
        op = self.history.invoke(
            client=name, node=node.node_id, kind=CAS if cas else PUT, key=key, value=value
        )
        params = {"cas": cas} if cas else {}
        try:
            answer = api.put(f"/api/v1/kv/{key}", json=value, params=params)
        except httpx.ConnectError:
            self.history.complete(op, FAIL)  # nothing was sent
            return
        except httpx.HTTPError:
            self.history.complete(op, UNKNOWN)
            current[key] = None  # we no longer know what is there
            return
        if answer.status_code in (200, 201):
            body = answer.json()
            self.history.complete(
                op, OK, status=answer.status_code, version=body["version"], hlc=body["hlc"]
            )
            current[key] = body["version"]
        else:
            self.history.complete(op, FAIL, status=answer.status_code)
            if answer.status_code == 409:
                current[key] = None

    def _delete(self, api, name, node, key, current) -> None:
        op = self.history.invoke(client=name, node=node.node_id, kind=DELETE, key=key)
        try:
            answer = api.delete(f"/api/v1/kv/{key}")
        except httpx.ConnectError:
            self.history.complete(op, FAIL)
            return
        except httpx.HTTPError:
            self.history.complete(op, UNKNOWN)
            current[key] = None
            return
        if answer.status_code == 204:
            self.history.complete(op, OK, status=204)
        else:
            self.history.complete(op, FAIL, status=answer.status_code)
        current[key] = None

    # --- watches -----------------------------------------------------------------------------

    def _watch(self, node: Node, stream: Stream) -> None:
        since: int | None = None
        headers = {**self.headers(), "Accept": "text/event-stream"}
        timeout = httpx.Timeout(TIMEOUT_S, read=2.0)
        while not self.watch_stop.is_set():
            params = {"prefix": self.prefix}
            if since is not None:
                params["since"] = str(since)
                stream.reconnects.append((len(stream.events), since))
            try:
                with httpx.stream(
                    "GET",
                    f"{node.url}/api/v1/watch",
                    params=params,
                    headers=headers,
                    timeout=timeout,
                ) as answer:
                    if answer.status_code != 200:
                        raise httpx.HTTPError(f"HTTP {answer.status_code}")
                    for line in answer.iter_lines():
                        if self.watch_stop.is_set():
                            return
                        if not line.startswith("data: "):
                            continue
                        frame = json.loads(line[6:])
                        if frame.get("type") == "ready":
                            if stream.ready is None:
                                stream.ready = frame["revision"]
                            if since is None:
                                since = frame["revision"]
                        elif frame.get("type") in ("put", "delete"):
                            stream.events.append(frame)
                            since = frame["revision"]
            except httpx.HTTPError:
                pass  # a read timeout on a quiet stream, or the node is down: resume
            if since is None and stream.ready is not None:
                since = stream.ready
            self.watch_stop.wait(0.2)


# --- after healing ---------------------------------------------------------------------------


def merkle_converged(nodes: list[Node], token: str | None, *, timeout: float) -> tuple[float, bool]:
    """Seconds until every node reports the same Merkle root (polling), and whether it did."""
    started = time.monotonic()
    headers = _auth(token)
    while time.monotonic() - started < timeout:
        roots = set()
        try:
            for node in nodes:
                roots.add(
                    httpx.get(f"{node.url}/api/v1/status", headers=headers, timeout=5).json()[
                        "merkle_root"
                    ]
                )
        except (httpx.HTTPError, ValueError, KeyError):
            roots = {None, "down"}
        if len(roots) == 1:
            return time.monotonic() - started, True
        time.sleep(0.25)
    return time.monotonic() - started, False


def finals_read(
    nodes: list[Node], token: str | None, keys: set[str]
) -> dict[str, dict[str, Final | None]]:
    """Node id → key → the key's current version there (tombstones included; None: absent)."""
    finals: dict[str, dict[str, Final | None]] = {}
    headers = _auth(token)
    for node in nodes:
        state: dict[str, Final | None] = {}
        with httpx.Client(base_url=node.url, headers=headers, timeout=10) as api:
            for key in sorted(keys):
                answer = api.get(f"/api/v1/history/{key}")
                if answer.status_code == 404:
                    state[key] = None
                    continue
                answer.raise_for_status()
                top = answer.json()["versions"][0]
                state[key] = Final(top["version"], top["hlc"], top["origin"], top["deleted"])
        finals[node.node_id] = state
    return finals


def joined_at(nodes: list[Node], token: str | None) -> dict[str, int]:
    headers = _auth(token)
    members = httpx.get(
        f"{nodes[0].url}/api/v1/cluster/members", headers=headers, timeout=10
    ).json()
    return {m["node_id"]: m["joined_at"] for m in members}


def streams_caught_up(history: History, finals: dict[str, dict[str, Final | None]]) -> bool:
    """Whether each watch's last event per key is the key's final version on its node."""
    for stream in history.streams:
        last = {event["key"]: event["version"] for event in stream.events}
        for key, final in finals.get(stream.node, {}).items():
            if final is not None and last.get(key) != final.version:
                return False
    return True


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
