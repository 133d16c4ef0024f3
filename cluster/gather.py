"""Cluster-wide views, gathered on demand: one signed request to every live peer at once, with a
short timeout; the peers that have not answered in time, or answered something unusable, are
named rather than waited for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings

from .config import Config
from .membership import MemberState
from .selectors import members_live
from .transport import HttpTransport, Transport, TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Shared by every view of the process; a peer that hangs holds a thread until its HTTP timeout.
_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="kvs-gather")


@dataclass(frozen=True)
class Gathered(Generic[T]):
    """The peers' parsed answers by node id, and the ids of those that gave none in time."""

    answers: dict[str, T]
    unreachable: list[str]


def gather(
    path: str,
    payload: dict,
    *,
    parse: Callable[[dict], T],
    peers: list[MemberState] | None = None,
    transport: Transport | None = None,
    timeout_s: float | None = None,
) -> Gathered[T]:
    """POST `payload` to `path` of every live peer (alive or suspect; none once this node has
    left) concurrently, and wait at most `timeout_s` (KVS_GATHER_TIMEOUT) for all of them.

    `parse` turns an answer into the caller's value; a ValueError or KeyError there counts the
    peer as unreachable, like a failed or late request."""
    timeout_s = settings.KVS_GATHER_TIMEOUT if timeout_s is None else timeout_s
    peers = members_live() if peers is None else peers
    if not peers:
        return Gathered({}, [])
    transport = transport or _http_transport(timeout_s)
    futures = {
        _pool.submit(transport.send, peer.url, path, payload, to=peer.node_id): peer
        for peer in peers
    }
    done, _late = wait(futures, timeout=timeout_s)
    answers: dict[str, T] = {}
    for future in done:
        peer = futures[future]
        try:
            answers[peer.node_id] = parse(future.result())
        except TransportError as error:
            log.info("%s on %s failed: %s", path, peer.node_id, error)
        except (ValueError, KeyError, TypeError) as error:
            log.info("%s on %s: unusable answer: %s", path, peer.node_id, error)
    unreachable = sorted(peer.node_id for peer in peers if peer.node_id not in answers)
    return Gathered(answers, unreachable)


def _http_transport(timeout_s: float) -> HttpTransport:
    config = Config.from_settings()
    return HttpTransport(node_id=config.node_id, secret=config.secret, timeout_s=timeout_s)
