"""Subscriber counts: per process, summed per node in Redis, forgotten when a process goes."""

from __future__ import annotations

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
