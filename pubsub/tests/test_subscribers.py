"""Subscriber counts: per process, summed per node in Redis, forgotten when a process goes."""

from __future__ import annotations

import threading

from pubsub.subscribers import COUNTS_KEY, SubscriberBook, topics_subscribed, topics_visible


def test_counts_of_every_process_of_the_node_are_summed(node_redis):
    web1, web2 = SubscriberBook(), SubscriberBook()
    web1._counts.update({"a": 2, "b/x": 1})
    web2._counts.update({"a": 1})
    web1.write()
    web2.write()
    assert topics_subscribed() == {"a": 3, "b/x": 1}


def test_a_process_whose_counts_expired_no_longer_counts(node_redis):
    alive, dead = SubscriberBook(), SubscriberBook()
    alive._counts.update({"a": 1})
    dead._counts.update({"a": 5})
    alive.write()
    dead.write()
    node_redis.delete(COUNTS_KEY.format(dead.process))  # as the TTL would
    assert topics_subscribed() == {"a": 1}
    assert node_redis.smembers("kvs:pubsub:processes") == {alive.process.encode()}


def test_counts_are_kept_from_expiring_only_while_there_are_any(node_redis):
    book = SubscriberBook()
    book._counts.update({"a": 1})
    book.write()
    assert 0 < node_redis.ttl(COUNTS_KEY.format(book.process)) <= 15
    book._counts.clear()
    book.write()
    assert topics_subscribed() == {}


def test_visible_topics_are_those_under_the_prefix_in_name_order(node_redis):
    book = SubscriberBook()
    book._counts.update({"team/b": 1, "team/a": 2, "other": 1})
    book.write()
    assert topics_visible(prefix="team/") == [("team/a", 2), ("team/b", 1)]
    assert [t for t, _ in topics_visible(prefix=None)] == ["other", "team/a", "team/b"]


def test_a_slow_write_of_older_counts_never_replaces_newer_ones(node_redis):
    """Two threads write the same process's counts (its refresher, and a caller): the one that
    read the counts last stores them last."""

    class SlowFirstRead(SubscriberBook):
        def __init__(self):
            super().__init__()
            self.read_once, self.go_on = threading.Event(), threading.Event()

        def mapping(self):
            mapping = super().mapping()
            if not self.read_once.is_set():  # the first writer stops here with what it read
                self.read_once.set()
                assert self.go_on.wait(5)
            return mapping

    book = SlowFirstRead()
    book._counts.update({"a": 1})
    older = threading.Thread(target=book.write)
    older.start()
    assert book.read_once.wait(5)
    book._counts.update({"b": 1})  # a change after the first writer read the counts
    newer = threading.Thread(target=book.write)
    newer.start()
    # No condition marks "newer is blocked": give it a moment in which, without the write lock,
    # it would store its counts before the older write does.
    newer.join(0.2)
    book.go_on.set()
    older.join(5)
    newer.join(5)
    assert not older.is_alive() and not newer.is_alive()
    assert topics_subscribed() == {"a": 1, "b": 1}
