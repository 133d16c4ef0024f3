"""Replica health: every node's Merkle root, keys, revision, replication lag per peer and last
anti-entropy round, gathered over the signed internal API; and one anti-entropy round on demand.
"""

from __future__ import annotations

import time

from django.conf import settings

from kv.selectors import live_key_count, store_state
from kvsite.exceptions import InvalidInput, NotFound, Unavailable

from .antientropy import merkle_sync
from .config import Config
from .gather import gather
from .membership import LEFT
from .node import local_node, node_mode, node_syncing, node_syncing_set
from .replication import replication_lags
from .rounds import antientropy_last, antientropy_rounds
from .selectors import members_list, members_live
from .transport import HttpTransport, TransportError

HEALTH_PATH = "/cluster/internal/health"


class PeerUnavailable(Unavailable):
    code = "peer_unavailable"


def node_health() -> dict:
    """This node's part of the health view."""
    state = store_state()
    lags = replication_lags()
    return {
        "node_id": local_node().node_id,
        "mode": node_mode(),
        "merkle_root": state.merkle_root,
        "keys": live_key_count(),
        "revision": state.revision,
        "replication": {
            peer: {"lag_revisions": lag.revisions, "lag_seconds": round(lag.seconds, 3)}
            for peer, lag in lags.items()
        },
        "last_antientropy": antientropy_last(),
        "antientropy": antientropy_rounds(),
    }


def node_health_parse(answer: dict) -> dict:
    """A peer's health answer; raise ValueError unless it has the fields the view shows."""
    if not isinstance(answer, dict) or not isinstance(answer.get("node_id"), str):
        raise ValueError("expected a node's health")
    for name in ("merkle_root",):
        if not isinstance(answer.get(name), str):
            raise ValueError(f"expected {name}")
    for name in ("keys", "revision"):
        if type(answer.get(name)) is not int:
            raise ValueError(f"expected {name}")
    if not isinstance(answer.get("replication"), dict):
        raise ValueError("expected replication")
    return answer


def cluster_health(**gathering) -> dict:
    """Every member's health (this node's own, the live peers' gathered), and whether all roots
    agree: `converged` is true only when every member that has not left answered with the same
    root. `gathering`: `peers`, `transport`, `timeout_s` for `cluster.gather.gather`."""
    me = node_health()
    gathered = gather(HEALTH_PATH, {}, parse=node_health_parse, **gathering)
    answers = {me["node_id"]: me, **gathered.answers}
    nodes = []
    for member in members_list():
        if member.status == LEFT:
            continue
        answer = answers.get(member.node_id)
        if answer is None:
            nodes.append(_absent(member.node_id, member.status))
        else:
            nodes.append({**answer, "status": member.status, "reachable": True})
    for node_id, answer in answers.items():  # answered, not (yet) a member here
        if not any(n["node_id"] == node_id for n in nodes):
            nodes.append({**answer, "status": "alive", "reachable": True})
    roots = {n["merkle_root"] for n in nodes}
    converged = all(n["reachable"] for n in nodes) and len(roots) == 1
    return {"nodes": nodes, "converged": converged, "unreachable": gathered.unreachable}


def _absent(node_id: str, status: str) -> dict:
    return {
        "node_id": node_id,
        "status": status,
        "reachable": False,
        "merkle_root": None,
        "keys": None,
        "revision": None,
        "replication": {},
        "last_antientropy": None,
    }


def cluster_repair(*, peer: object) -> dict:
    """One anti-entropy round with the live peer `peer` now; what it found and moved.

    InvalidInput unless `peer` names another node; NotFound if it is no live member;
    PeerUnavailable if the exchange fails. Like a scheduled round, a success with a peer that
    is not syncing itself ends this node's first sync."""
    if not isinstance(peer, str) or not peer:
        raise InvalidInput('The body must be {"peer": node_id}.')
    if peer == local_node().node_id:
        raise InvalidInput("A node repairs with another node: name a peer, not this node.")
    member = next((m for m in members_live() if m.node_id == peer), None)
    if member is None:
        raise NotFound(f"No live peer {peer!r}.")
    config = Config.from_settings()
    transport = HttpTransport(
        node_id=config.node_id, secret=config.secret, timeout_s=settings.KVS_REPLICATION_TIMEOUT
    )
    started = time.monotonic()
    try:
        report = merkle_sync(transport, member.url, peer_id=member.node_id)
    except TransportError as error:
        raise PeerUnavailable(f"The anti-entropy round with {peer} failed: {error}") from None
    if node_syncing() and not report.peer_syncing:  # as a scheduled round would
        node_syncing_set(False)
    return {
        "peer": peer,
        "equal": report.equal,
        "differing_buckets": len(report.buckets),
        "buckets": report.buckets,
        "pulled": report.pulled,
        "pushed": report.pushed,
        "bytes": report.bytes_sent + report.bytes_received,
        "messages": report.messages,
        "seconds": round(time.monotonic() - started, 6),
    }
