"""How many sockets subscribe to each topic: on this node, counted in its Redis, and in the whole
cluster, gathered from every live peer on demand.

Each process counts its own subscriptions and keeps a copy of the counts in Redis
(kvsite.processbook: a hash per process that expires unless refreshed). The node's count sums the
copies, so a process that died without closing its sockets stops counting within
processbook.TTL_S. The cluster's count adds what each live peer answers to
`/cluster/internal/pubsub/topics` within KVS_GATHER_TIMEOUT, and names the peers that did not.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from kvsite.processbook import ProcessBook, redis_client  # noqa: F401 (redis_client: re-exported)

log = logging.getLogger(__name__)

TOPICS_PATH = "/cluster/internal/pubsub/topics"

PROCESSES_KEY = "kvs:pubsub:processes"
COUNTS_KEY = "kvs:pubsub:subscribers:{}"


class SubscriberBook(ProcessBook):
    """This process's subscription counts, copied to Redis by a thread of its own."""

    processes_key = PROCESSES_KEY
    hash_key = COUNTS_KEY
    what = "pub/sub subscriber counts"

    def __init__(self) -> None:
        super().__init__()
        self._counts: Counter[str] = Counter()

    def joined(self, topic: str) -> None:
        self._change(topic, +1)

    def left(self, topic: str) -> None:
        self._change(topic, -1)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {topic: n for topic, n in self._counts.items() if n > 0}

    def mapping(self) -> dict[str, int]:
        return self.counts()

    def _change(self, topic: str, delta: int) -> None:
        with self._lock:
            self._counts[topic] += delta
            if self._counts[topic] <= 0:
                del self._counts[topic]
            self._touched()
        self._changed.set()


book = SubscriberBook()


def topics_subscribed() -> dict[str, int]:
    """Every topic with subscribers on this node, and how many (summed over its processes)."""
    totals: Counter[str] = Counter()
    for counts in SubscriberBook.hashes():
        for topic, n in counts.items():
            totals[topic.decode()] += int(n)
    return dict(totals)


def topics_under(counts: dict[str, int], prefix: str | None) -> dict[str, int]:
    """The counts of the topics under `prefix` (None: all)."""
    return {t: n for t, n in counts.items() if prefix is None or t.startswith(prefix)}


def topics_visible(*, prefix: str | None) -> list[tuple[str, int]]:
    """This node's subscribed topics under `prefix` (None: all), by name, with their counts."""
    return sorted(topics_under(topics_subscribed(), prefix).items())


def topics_answer(*, prefix: str | None) -> dict:
    """What this node answers a peer gathering the cluster's counts."""
    return {"topics": dict(topics_visible(prefix=prefix))}


def topics_answer_parse(answer: dict) -> dict[str, int]:
    """A peer's counts from its answer; raise ValueError if they are not names and counts."""
    topics = answer["topics"]
    if not isinstance(topics, dict) or not all(
        isinstance(t, str) and type(n) is int and n >= 0 for t, n in topics.items()
    ):
        raise ValueError("expected {topics: {name: count}}")
    return topics


@dataclass(frozen=True)
class TopicsView:
    """Subscribed topics with their subscribers on every node that answered, and the live peers
    that did not."""

    topics: list[tuple[str, int]]
    unreachable: list[str]


def topics_cluster(*, prefix: str | None, **gathering) -> TopicsView:
    """Every node's subscribers of the topics under `prefix` (None: all), summed per topic, by
    name. `gathering`: `peers`, `transport`, `timeout_s` for `cluster.gather.gather`."""
    from cluster.gather import gather

    totals: Counter[str] = Counter(dict(topics_visible(prefix=prefix)))
    gathered = gather(TOPICS_PATH, {"prefix": prefix}, parse=topics_answer_parse, **gathering)
    for counts in gathered.answers.values():
        totals.update(topics_under(counts, prefix))  # a peer that ignored the prefix, too
    return TopicsView(sorted(totals.items()), gathered.unreachable)
