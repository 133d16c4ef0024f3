"""Watch and pub/sub websockets on a real three-node cluster, with real websocket clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .helpers import Launch, kvs_up, node_groups, signal_group, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
JOIN_DEADLINE_S = 60.0
EVENT_DEADLINE_S = 20.0  # an event from another node waits for push replication
QUIET_S = 1.5  # how long "nothing more arrives" is watched for
REVOKED_DEADLINE_S = 15.0  # a revocation replicates, then open sockets see it at their next check
SEND_QUEUE = 100  # per-socket send queue of this cluster: a stalled socket overflows quickly
GATHER_TIMEOUT_S = 1.0  # the default KVS_GATHER_TIMEOUT
GATHER_SLACK_S = 4.0  # node1 answering on a loaded machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    env = {"KVS_WS_SEND_QUEUE": str(SEND_QUEUE)}
    tmp = tmp_path_factory.mktemp("realtime")
    with kvs_up(tmp, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        wait_for(
            lambda: all(alive_peers(launched, i) == 2 for i in (1, 2, 3)),
            timeout=JOIN_DEADLINE_S,
            interval=0.25,
            what="every node to see two alive peers",
        )
        wait_for(
            lambda: all(node_mode(launched, i) == "normal" for i in (1, 2, 3)),
            timeout=JOIN_DEADLINE_S,
            interval=0.25,
            what="every node to finish its first sync",
        )
        yield launched


def node_mode(launch: Launch, index: int) -> str | None:
    try:
        return httpx.get(f"{launch.node_url(index)}/health", timeout=2.0).json()["mode"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def alive_peers(launch: Launch, index: int) -> int:
    try:
        with api(launch, index) as client:
            members = client.get("/api/v1/cluster/members")
    except httpx.HTTPError:
        return -1
    if members.status_code != 200:
        return -1
    return sum(m["status"] == "alive" and m["node_id"] != f"node{index}" for m in members.json())


def subscribed(launch: Launch, topic: str, total: int, viewers=(1,)) -> None:
    """Wait until each viewer node counts `total` subscribers of `topic` (on every node, all of
    them answering): their sockets are accepted, so their subscriptions are in place."""

    def counted() -> bool:
        for index in viewers:
            with api(launch, index) as client:
                body = client.get("/api/v1/pubsub/").json()
            if {"name": topic, "subscribers": total} not in body["topics"] or body["unreachable"]:
                return False
        return True

    wait_for(counted, timeout=EVENT_DEADLINE_S, what=f"{total} subscribers of {topic}")


def api(launch: Launch, index: int = 1, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=launch.node_url(index),
        headers={"Authorization": f"Bearer {token or launch.token}"},
        timeout=10.0,
    )


def ws_url(launch: Launch, index: int, path: str) -> str:
    return launch.node_url(index).replace("http://", "ws://") + path


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_token(launch: Launch, username: str, scopes: list[str]) -> str:
    """A token of a new user, once every node accepts it (tokens replicate)."""
    with api(launch) as root:
        assert root.post("/api/v1/users", json={"username": username}).status_code == 201
        issued = root.post("/api/v1/tokens", json={"user": username, "scopes": scopes})
        assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    for index in (1, 2, 3):
        wait_for(
            lambda index=index: api(launch, index, token).get("/api/v1/whoami").status_code == 200,
            timeout=EVENT_DEADLINE_S,
            what=f"node{index} to accept {username}'s token",
        )
    return token


async def next_frame(ws, timeout: float = EVENT_DEADLINE_S) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def nothing_more(ws, wait: float = QUIET_S) -> bool:
    try:
        frame = await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected frame {frame}")


async def refusal(url: str, **kw) -> int:
    try:
        async with websockets.connect(url, **kw):
            pass
    except InvalidStatus as error:
        return error.response.status_code
    raise AssertionError(f"{url} was accepted")


# --- Authentication ------------------------------------------------------------------------------


def test_sockets_without_a_valid_credential_are_refused(cluster: Launch):
    writer = user_token(cluster, "writer", ["write"])

    async def scenario():
        watch = ws_url(cluster, 2, "/ws/v1/watch?prefix=a/")
        assert await refusal(watch) == 401
        assert await refusal(watch + "&token=kvs_not-a-real-token") == 401
        assert await refusal(watch, additional_headers=auth(writer)) == 403
        assert await refusal(ws_url(cluster, 3, "/ws/v1/pubsub/t")) == 401
        assert await refusal(ws_url(cluster, 3, f"/ws/v1/pubsub/t?token={writer}")) == 403

    asyncio.run(scenario())


async def closed_with(ws, timeout: float) -> int | None:
    """The code the server closes `ws` with, within `timeout` seconds (frames are skipped)."""

    async def read_to_the_end() -> int | None:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None

    return await asyncio.wait_for(read_to_the_end(), timeout)


def test_a_token_revoked_on_one_node_closes_its_sockets_on_another_with_4401(cluster: Launch):
    doomed = user_token(cluster, "doomed", ["read", "pubsub"])
    kept = user_token(cluster, "kept", ["read", "pubsub"])
    with api(cluster) as root:
        (listed,) = root.get("/api/v1/tokens", params={"user": "doomed"}).json()
    watch, topic = "/ws/v1/watch?prefix=revoke/", "revoke/t"

    async def scenario():
        sockets = {
            (who, kind): await websockets.connect(
                ws_url(cluster, 2, path), additional_headers=auth(token)
            )
            for who, token in (("doomed", doomed), ("kept", kept))
            for kind, path in (("watch", watch), ("pubsub", f"/ws/v1/pubsub/{topic}"))
        }
        try:
            for who in ("doomed", "kept"):
                assert (await next_frame(sockets[who, "watch"]))["type"] == "ready"
            await asyncio.to_thread(subscribed, cluster, topic, 2)
            with api(cluster, 1) as node1:
                assert node1.delete(f"/api/v1/tokens/{listed['id']}").status_code == 204
            for kind in ("watch", "pubsub"):  # on node2, open before the revocation
                code = await closed_with(sockets["doomed", kind], REVOKED_DEADLINE_S)
                assert code == 4401, kind
            with api(cluster, 1) as node1:  # the other side: a token that stands keeps its sockets
                assert node1.put("/api/v1/kv/revoke/after", json=1).status_code == 201
                assert node1.post(f"/api/v1/pubsub/{topic}", json={"data": 2}).status_code == 202
            event = await next_frame(sockets["kept", "watch"])
            assert (event["key"], event["value"]) == ("revoke/after", 1)
            message = await next_frame(sockets["kept", "pubsub"])
            assert (message["type"], message["data"]) == ("message", 2)
        finally:
            for ws in sockets.values():
                await ws.close()

    asyncio.run(scenario())


# --- Watch ---------------------------------------------------------------------------------------


def test_watch_sees_local_and_replicated_writes(cluster: Launch):
    async def scenario():
        headers = auth(cluster.token)
        path = "/ws/v1/watch?prefix=live/"
        async with (
            websockets.connect(ws_url(cluster, 1, path), additional_headers=headers) as on1,
            websockets.connect(ws_url(cluster, 2, path), additional_headers=headers) as on2,
        ):
            assert (await next_frame(on1))["type"] == "ready"
            assert (await next_frame(on2))["type"] == "ready"
            with api(cluster, 1) as node1, api(cluster, 3) as node3:
                local = node1.put("/api/v1/kv/live/a", json={"from": 1})
                remote = node3.put("/api/v1/kv/live/b", json={"from": 3})
                assert (local.status_code, remote.status_code) == (201, 201), remote.text
                local, remote = local.json(), remote.json()
                node1.put("/api/v1/kv/elsewhere/c", json=0)
            got1 = {f["key"]: f for f in [await next_frame(on1), await next_frame(on1)]}
            got2 = {f["key"]: f for f in [await next_frame(on2), await next_frame(on2)]}
            for got in (got1, got2):
                assert got["live/a"]["value"] == {"from": 1}
                assert got["live/a"]["version"] == local["version"]
                assert got["live/b"]["value"] == {"from": 3}
                assert got["live/b"]["version"] == remote["version"]
            assert got1["live/a"]["revision"] == local["revision"]  # revisions are per node
            assert await nothing_more(on1)

    asyncio.run(scenario())


def test_reconnecting_with_since_replays_what_changed_meanwhile(cluster: Launch):
    async def scenario():
        with api(cluster, 1) as node1:
            since = node1.put("/api/v1/kv/resume/a", json=1).json()["revision"]
            node1.put("/api/v1/kv/resume/b", json=2)
            node1.put("/api/v1/kv/resume/a", json=3)
            assert node1.delete("/api/v1/kv/resume/b").status_code == 204
            head = node1.put("/api/v1/kv/resume/c", json=4).json()["revision"]
        url = ws_url(cluster, 1, f"/ws/v1/watch?prefix=resume/&since={since}")
        async with websockets.connect(url, additional_headers=auth(cluster.token)) as ws:
            frames = [await next_frame(ws) for _ in range(4)]
        assert [(f["type"], f.get("key"), f.get("value")) for f in frames[:3]] == [
            ("put", "resume/a", 3),
            ("delete", "resume/b", None),
            ("put", "resume/c", 4),
        ]
        assert frames[3]["type"] == "ready" and frames[3]["revision"] >= head
        assert frames[3]["node"] == "node1"

    asyncio.run(scenario())


def test_a_watcher_gets_no_event_for_a_key_it_may_not_read(cluster: Launch):
    reader = user_token(cluster, "reader", ["read"])

    async def scenario():
        path = "/ws/v1/watch?prefix=acl/"
        async with (
            websockets.connect(ws_url(cluster, 1, path), additional_headers=auth(reader)) as on1,
            websockets.connect(ws_url(cluster, 2, path), additional_headers=auth(reader)) as on2,
        ):
            await next_frame(on1)
            await next_frame(on2)
            with api(cluster, 1) as root:
                rule = root.put("/api/v1/acl/acl/secret/", json={"mode": "cdwr--------"})
                assert rule.status_code == 201, rule.text
                assert root.put("/api/v1/kv/acl/secret/x", json="hidden").status_code == 201
                assert root.put("/api/v1/kv/acl/open", json="seen").status_code == 201
            for ws in (on1, on2):
                frame = await next_frame(ws)
                assert (frame["key"], frame["value"]) == ("acl/open", "seen")
                assert await nothing_more(ws)

    asyncio.run(scenario())


# --- Pub/sub -------------------------------------------------------------------------------------


def test_a_message_published_on_one_node_reaches_every_subscriber_exactly_once(cluster: Launch):
    async def scenario():
        subscribers = []
        for index in (1, 1, 2, 2, 3, 3):
            url = ws_url(cluster, index, f"/ws/v1/pubsub/fanout/news?token={cluster.token}")
            subscribers.append(await websockets.connect(url))
        try:
            await asyncio.to_thread(subscribed, cluster, "fanout/news", 6, (1, 2, 3))
            await subscribers[2].send(json.dumps({"data": {"n": 1}}))  # on node2
            with api(cluster, 3) as node3:
                rest = node3.post("/api/v1/pubsub/fanout/news", json={"data": {"n": 2}})
            assert rest.status_code == 202, rest.text
            for ws in subscribers:
                frames = [await next_frame(ws) for _ in range(3 if ws is subscribers[2] else 2)]
                messages = [f for f in frames if f["type"] == "message"]
                assert sorted(m["data"]["n"] for m in messages) == [1, 2]
                assert {m["origin"] for m in messages} == {"node2", "node3"}
                assert rest.json()["id"] in {m["id"] for m in messages}
                assert await nothing_more(ws)
        finally:
            for ws in subscribers:
                await ws.close()

    asyncio.run(scenario())


def test_topics_list_counts_every_nodes_subscribers_and_names_a_frozen_node(cluster: Launch):
    path = f"/ws/v1/pubsub/counted/t?token={cluster.token}"
    on2, on3 = ws_url(cluster, 2, path), ws_url(cluster, 3, path)

    def listed_on_node1() -> tuple[dict, float]:
        started = time.monotonic()
        with api(cluster, 1) as node1:
            body = node1.get("/api/v1/pubsub/").json()
        return body, time.monotonic() - started

    async def scenario():
        async with websockets.connect(on2), websockets.connect(on2), websockets.connect(on3):
            await asyncio.to_thread(subscribed, cluster, "counted/t", 3, (1,))  # none on node1
            node3 = node_groups(cluster, 3)
            for group in node3:
                signal_group(group, signal.SIGSTOP)
            try:
                body, took = await asyncio.to_thread(listed_on_node1)
            finally:
                for group in node3:
                    signal_group(group, signal.SIGCONT)
            assert body["unreachable"] == ["node3"], body
            assert {"name": "counted/t", "subscribers": 2} in body["topics"], body
            assert took < GATHER_TIMEOUT_S + GATHER_SLACK_S, f"answered after {took:.1f} s"

    asyncio.run(scenario())
    wait_for(
        lambda: all(alive_peers(cluster, i) == 2 for i in (1, 2, 3)),
        timeout=JOIN_DEADLINE_S,
        interval=0.25,
        what="node3 to be alive again everywhere",
    )


def test_a_stalled_subscriber_does_not_slow_a_healthy_one(cluster: Launch):
    """The same burst is timed twice in one run, first with no stalled socket (the baseline, as
    fast as this machine is now), then beside one that reads nothing: the healthy subscriber's
    delays must stay near the baseline (a stall that held it back would add its whole wait)."""
    count, pad = 1500, "x" * 4000

    async def burst(topic: str, stalled: bool) -> tuple[list[float], StalledSocket | None]:
        path = f"/ws/v1/pubsub/stall/{topic}?token={cluster.token}"
        stall = StalledSocket(cluster.port, path) if stalled else None  # node1
        healthy = await websockets.connect(ws_url(cluster, 1, path))
        publisher = await websockets.connect(ws_url(cluster, 1, path))
        draining = asyncio.create_task(drain(publisher))
        try:
            await asyncio.to_thread(subscribed, cluster, f"stall/{topic}", 3 if stalled else 2)
            receiving = asyncio.create_task(receive(healthy, count))
            for i in range(count):
                await publisher.send(json.dumps({"data": {"i": i, "pad": pad}}))
            return await asyncio.wait_for(receiving, 120), stall
        finally:
            draining.cancel()
            for ws in (healthy, publisher):
                await ws.close()

    def p99(delays: list[float]) -> float:
        return delays[int(len(delays) * 0.99) - 1]

    async def scenario():
        baseline, _ = await burst("alone", stalled=False)
        delays, stalled = await burst("beside", stalled=True)
        assert p99(delays) < 2 * p99(baseline) + 1000, (p99(baseline), delays[-10:])
        # Reading at last, the stalled subscriber finds the gap announced in its place.
        frames = stalled.read_frames(quiet=QUIET_S)
        overflow = [f for f in frames if f["type"] == "overflow"]
        messages = [f for f in frames if f["type"] == "message"]
        assert overflow and len(messages) < count
        assert sum(f["dropped"] for f in overflow) + len(messages) == count

    asyncio.run(scenario())


async def receive(ws, count: int) -> list[float]:
    """Read `count` messages; their delivery delays (ms), sorted. No overflow notice may come."""
    delays = []
    for _ in range(count):
        frame = await next_frame(ws)
        assert frame["type"] == "message", frame
        delays.append(time.time() * 1000 - frame["published_at"])
    return sorted(delays)


async def drain(ws) -> None:
    async for _ in ws:
        pass


class StalledSocket:
    """A websocket client that completes the handshake and then reads nothing until told to."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def read_frames(self, *, quiet: float) -> list[dict]:
        """Every text frame that arrives until nothing has come for `quiet` seconds."""
        data = b""
        self.sock.settimeout(quiet)
        try:
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        except TimeoutError:
            pass
        finally:
            self.sock.close()
        frames = []
        while len(data) >= 2:
            size, offset = data[1] & 0x7F, 2
            if size == 126:
                size, offset = int.from_bytes(data[2:4]), 4
            elif size == 127:
                size, offset = int.from_bytes(data[2:10]), 10
            if len(data) < offset + size:
                break
            if data[0] & 0x0F == 1:  # a text frame (the server sends no others here)
                frames.append(json.loads(data[offset : offset + size]))
            data = data[offset + size :]
        return frames


# --- What clients send ---------------------------------------------------------------------------


def test_bodies_keys_and_frames_are_checked_at_the_door_over_real_http(cluster: Launch):
    """curl's default form type is JSON too; a path that is not UTF-8 is no key; a publish too
    deep for the door is refused on REST and websocket alike, and the others still reach peers."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    deep = '{"data": ' + "[" * 100 + "]" * 100 + "}"

    async def scenario():
        url = ws_url(cluster, 2, f"/ws/v1/pubsub/door/news?token={cluster.token}")
        publisher_url = ws_url(cluster, 1, f"/ws/v1/pubsub/door/news?token={cluster.token}")
        async with websockets.connect(url) as subscriber, websockets.connect(publisher_url) as pub:
            await asyncio.to_thread(subscribed, cluster, "door/news", 2)
            with api(cluster, 1) as node1:
                for method, path in (
                    ("PUT", "/api/v1/kv/al/%FF%FE"),
                    ("GET", "/api/v1/kv/al/%C0%80"),
                ):
                    refused = node1.request(method, path, content=b"1")
                    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_key")
                put = node1.put("/api/v1/kv/door/key", content=b'{"a": 1}', headers=form)
                assert put.status_code == 201, put.text
                meta = node1.put("/api/v1/meta/door/key", content=b'{"mode": 4095}', headers=form)
                assert meta.status_code == 200, meta.text
                first = node1.post("/api/v1/pubsub/door/news", content=b'{"data": 1}', headers=form)
                assert first.status_code == 202, first.text
                too_deep = node1.post("/api/v1/pubsub/door/news", content=deep.encode())
                assert (too_deep.status_code, too_deep.json()["code"]) == (400, "invalid_json")
            await pub.send(deep)
            answers = {f["type"]: f for f in [await next_frame(pub) for _ in range(2)]}
            assert answers.keys() == {"message", "error"}  # its copy of data 1, and the refusal
            assert answers["error"]["code"] == "invalid_json"
            await pub.send(json.dumps({"data": 2}))
            received = [await next_frame(subscriber) for _ in range(2)]
            assert [m["data"] for m in received] == [1, 2]
            assert await nothing_more(subscriber)

    asyncio.run(scenario())


def test_watchers_on_nodes_2_and_3_are_listed_from_node_1_and_gone_once_closed(cluster: Launch):
    def listed(prefix: str) -> list[tuple[str, str, str]]:
        with api(cluster, 1) as node1:
            body = node1.get("/api/v1/watchers", params={"prefix": prefix}).json()
        return sorted(
            (w["node"], w["kind"], w.get("prefix") or w.get("topic")) for w in body["watchers"]
        )

    expected = [("node2", "watch", "seen/a/"), ("node3", "pubsub", "seen/news")]

    async def scenario():
        watch_url = ws_url(cluster, 2, f"/ws/v1/watch?prefix=seen/a/&token={cluster.token}")
        sub_url = ws_url(cluster, 3, f"/ws/v1/pubsub/seen/news?token={cluster.token}")
        async with websockets.connect(watch_url) as watch, websockets.connect(sub_url):
            assert json.loads(await watch.recv())["type"] == "ready"
            await asyncio.to_thread(
                wait_for,
                lambda: listed("seen/") == expected,
                timeout=EVENT_DEADLINE_S,
                what="the watch on node2 and the subscription on node3, listed by node1",
                explain=lambda: listed("seen/"),
            )
            assert listed("seen/a/") == expected[:1]  # only those under the prefix
        await asyncio.to_thread(
            wait_for,
            lambda: listed("seen/") == [],
            timeout=EVENT_DEADLINE_S,
            what="the closed sockets to leave the list",
            explain=lambda: listed("seen/"),
        )

    asyncio.run(scenario())
