"""Queries and indexes on two real nodes: an index declared on node 1 after keys exist is built
there and on node 2 (its definition replicates), serves queries on both, sees replicated writes
and expiry, and its removal replicates too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .helpers import Launch, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 180.0
REPLICATE_DEADLINE_S = 60.0
KEYS = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    tmp = tmp_path_factory.mktemp("queries")
    env = {"KVS_AUTH_ENABLED": "true", "KVS_INDEX_SWEEP_INTERVAL": "1"}
    with kvs_up(tmp, nodes=2, env=env, start_deadline=START_DEADLINE_S) as launched:
        yield launched


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest, cluster: Launch) -> Iterator[None]:
    with logs_on_failure(request, cluster):
        yield


@pytest.fixture(scope="module")
def nodes(cluster: Launch) -> Iterator[dict[int, httpx.Client]]:
    clients = {
        i: httpx.Client(
            base_url=cluster.node_url(i),
            headers={"Authorization": f"Bearer {cluster.token}"},
            timeout=30.0,
            trust_env=False,
        )
        for i in (1, 2)
    }
    yield clients
    for c in clients.values():
        c.close()


def _query(c: httpx.Client, where: list, **extra) -> dict:
    answer = c.post("/api/v1/query", json={"prefix": "shop/", "where": where, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _index_state(c: httpx.Client, path: str) -> dict | None:
    listed = c.get("/api/v1/indexes/").json()
    return next((i for i in listed if i["prefix"] == "shop/" and i["path"] == path), None)


def _keys(answer: dict) -> list[str]:
    return [item["key"] for item in answer["items"]]


def test_index_built_for_existing_keys_replicates_and_serves(nodes):
    one, two = nodes[1], nodes[2]
    for i in range(KEYS):
        doc = {"price": i % 100, "name": f"item {i}", "tags": ["even" if i % 2 == 0 else "odd"]}
        assert one.put(f"/api/v1/kv/shop/{i:04}", json=doc).status_code == 201
    wait_for(
        lambda: len(_keys(_query(two, [], keys=True, limit=1000))) == KEYS,
        timeout=REPLICATE_DEADLINE_S,
        what="the keys to reach node 2",
    )
    declared = one.put("/api/v1/indexes/shop/", json={"path": "price"})
    assert declared.status_code == 201, declared.text
    name = declared.json()["name"]
    for c in (one, two):
        state = wait_for(
            lambda c=c: (s := _index_state(c, "price")) and s["state"] == "ready" and s,
            timeout=REPLICATE_DEADLINE_S,
            what=f"the index to be ready on {c.base_url}",
        )
        assert state["name"] == name and state["keys"] == KEYS
    for c in (one, two):
        answer = _query(c, [{"path": "price", "op": "eq", "value": 42}])
        assert _keys(answer) == ["shop/0042", "shop/0142", "shop/0242"]
        assert answer["index"] == name
        ranged = _query(c, [{"path": "price", "op": "ge", "value": 98}], order_by=["-price"])
        assert [i["value"]["price"] for i in ranged["items"]] == [99, 99, 99, 98, 98, 98]
        assert ranged["index"] == name


def test_replicated_writes_and_expiry_reach_the_index(nodes):
    one, two = nodes[1], nodes[2]
    name = _index_state(two, "price")["name"]
    where = [{"path": "price", "op": "eq", "value": 1000}]
    assert one.put("/api/v1/kv/shop/new", json={"price": 1000}).status_code == 201
    answer = wait_for(
        lambda: (a := _query(two, where)) and _keys(a) == ["shop/new"] and a,
        timeout=REPLICATE_DEADLINE_S,
        what="the replicated write to be found on node 2",
    )
    assert answer["index"] == name
    assert one.put("/api/v1/kv/shop/new", json={"price": 1001}).status_code == 200
    wait_for(
        lambda: _keys(_query(two, where)) == [],
        timeout=REPLICATE_DEADLINE_S,
        what="the replaced value to leave the index on node 2",
    )
    brief = [{"path": "price", "op": "eq", "value": 2000}]
    assert one.put("/api/v1/kv/shop/brief?ttl=3s", json={"price": 2000}).status_code == 201
    wait_for(
        lambda: _keys(_query(two, brief)) == ["shop/brief"],
        timeout=REPLICATE_DEADLINE_S,
        what="the key with a TTL to reach node 2",
    )
    wait_for(
        lambda: _keys(_query(two, brief)) == [] and _keys(_query(one, brief)) == [],
        timeout=REPLICATE_DEADLINE_S,
        what="the expired key to leave every answer",
    )
    assert one.delete("/api/v1/kv/shop/0042").status_code == 204
    wait_for(
        lambda: (
            _keys(_query(two, [{"path": "price", "op": "eq", "value": 42}]))
            == ["shop/0142", "shop/0242"]
        ),
        timeout=REPLICATE_DEADLINE_S,
        what="the deleted key to leave the answers of node 2",
    )


def test_removing_an_index_replicates(nodes):
    one, two = nodes[1], nodes[2]
    assert two.delete("/api/v1/indexes/shop/?path=price").status_code == 204
    wait_for(
        lambda: _index_state(one, "price") is None,
        timeout=REPLICATE_DEADLINE_S,
        what="the removal to reach node 1",
    )
    answer = _query(one, [{"path": "price", "op": "eq", "value": 42}])
    assert answer["index"] is None and _keys(answer) == ["shop/0142", "shop/0242"]
