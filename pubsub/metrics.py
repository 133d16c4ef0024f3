"""Metrics of topic pub/sub: messages taken in (from clients, from peers) and sent out to peers."""

from ops.metrics import Counter

CLIENT, PEER = "client", "peer"

MESSAGES_IN = Counter(
    "kvs_pubsub_messages_in_total",
    "Messages delivered to this node's subscribers, by source: client (published here) or peer"
    " (forwarded by the node it was published on; first copies only).",
    ["source"],
)
DUPLICATES = Counter(
    "kvs_pubsub_duplicates_total", "Copies of messages already delivered here, dropped."
)
MESSAGES_OUT = Counter(
    "kvs_pubsub_messages_out_total", "Messages forwarded to the peer (posts it accepted).", ["peer"]
)
MESSAGES_LOST = Counter(
    "kvs_pubsub_forward_dropped_total",
    "Messages not forwarded to the peer, by reason: overflow (its outbox was full) or failed"
    " (its post failed twice).",
    ["peer", "reason"],
)
_in = {source: MESSAGES_IN.labels(source) for source in (CLIENT, PEER)}


def published_counted() -> None:
    _in[CLIENT].inc()


def received_counted(*, delivered: int, duplicates: int) -> None:
    _in[PEER].inc(delivered)
    DUPLICATES.inc(duplicates)


def forwarded_counted(*, peer: str, messages: int) -> None:
    MESSAGES_OUT.labels(peer).inc(messages)


def forward_dropped_counted(*, peer: str, reason: str, messages: int) -> None:
    MESSAGES_LOST.labels(peer, reason).inc(messages)
