"""The process's group members: one layer channel per group, events handed to every member in
order, teardown with the last member, and the ordered outbox for group sends."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from kv.tests.realtime import channel_layer  # noqa: F401 (a fixture)
from kvsite.realtime import LocalGroups, local_groups


class Member:
    """A socket as LocalGroups sees one: something with `group_event`."""

    def __init__(self, *, fails: bool = False) -> None:
        self.events: list[dict] = []
        self.fails = fails

    def group_event(self, event: dict) -> None:
        if self.fails:
            raise RuntimeError("this member breaks")
        self.events.append(event)


async def until(condition, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def layer_groups() -> dict:
    return get_channel_layer().groups


def test_members_of_a_group_share_one_layer_channel_and_get_every_event_in_order():
    async def scenario():
        groups = LocalGroups()
        first, second = Member(), Member()
        await groups.join("g", first)
        await groups.join("g", second)
        assert len(layer_groups()["g"]) == 1  # one subscription, not one per socket
        assert groups.members("g") == 2
        layer = get_channel_layer()
        for i in range(20):
            await layer.group_send("g", {"type": "e", "i": i})
        await until(lambda: len(first.events) == 20 and len(second.events) == 20)
        assert [e["i"] for e in first.events] == list(range(20))
        assert [e["i"] for e in second.events] == list(range(20))

    asyncio.run(scenario())


def test_the_last_member_to_leave_leaves_the_layer_group():
    async def scenario():
        groups = LocalGroups()
        first, second = Member(), Member()
        await groups.join("g", first)
        await groups.join("g", second)
        await groups.leave("g", first)
        assert len(layer_groups().get("g", {})) == 1
        await get_channel_layer().group_send("g", {"type": "e"})
        await until(lambda: second.events)
        assert first.events == []
        await groups.leave("g", second)
        assert groups.members("g") == 0
        assert not layer_groups().get("g")
        await groups.join("g", first)  # and the group can be joined again
        await get_channel_layer().group_send("g", {"type": "e", "again": True})
        await until(lambda: first.events)
        assert first.events == [{"type": "e", "again": True}]

    asyncio.run(scenario())


def test_a_failing_member_does_not_keep_events_from_the_others():
    async def scenario():
        groups = LocalGroups()
        broken, healthy = Member(fails=True), Member()
        await groups.join("g", broken)
        await groups.join("g", healthy)
        for i in range(3):
            await get_channel_layer().group_send("g", {"type": "e", "i": i})
        await until(lambda: len(healthy.events) == 3)

    asyncio.run(scenario())


def test_concurrent_first_joins_open_one_channel():
    async def scenario():
        groups = LocalGroups()
        members = [Member() for _ in range(10)]
        await asyncio.gather(*(groups.join("g", m) for m in members))
        assert len(layer_groups()["g"]) == 1
        await get_channel_layer().group_send("g", {"type": "e"})
        await until(lambda: all(m.events for m in members))

    asyncio.run(scenario())


def test_the_outbox_sends_in_call_order_without_waiting_for_the_layer():
    async def scenario():
        groups = local_groups()
        member = Member()
        await groups.join("g", member)
        for i in range(50):
            await groups.send("g", {"type": "e", "i": i})
        await until(lambda: len(member.events) == 50)
        assert [e["i"] for e in member.events] == list(range(50))

    asyncio.run(scenario())


def test_each_event_loop_has_its_own_members():
    async def mine():
        return local_groups()

    first, second = asyncio.run(mine()), asyncio.run(mine())
    assert first is not second


@pytest.fixture(autouse=True)
def _fresh_layer(channel_layer):  # noqa: F811 (the fixture, used by name)
    from channels.layers import channel_layers

    channel_layers.backends.clear()  # each test gets an empty in-memory layer
    yield
    channel_layers.backends.clear()
