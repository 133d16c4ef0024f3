"""The `kvs` client subcommands and kvsite_client against a real three-node cluster: every
subcommand as a subprocess, each exit code, failover past a dead endpoint, a login profile, and
a watch that outlives the node it reads."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kvsite_client import Client

from .helpers import (
    KVS,
    Launch,
    free_port,
    health_ok,
    kvs_up,
    logs_on_failure,
    node_groups,
    signal_group,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

JOIN_DEADLINE_S = 90.0
EVENT_DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    with kvs_up(tmp_path_factory.mktemp("cli"), nodes=3, start_deadline=180) as launched:

        def joined() -> bool:
            for index in (1, 2, 3):
                try:
                    r = httpx.get(f"{launched.node_url(index)}/health", timeout=2)
                    members = httpx.get(
                        f"{launched.node_url(index)}/api/v1/cluster/members",
                        headers={"Authorization": f"Bearer {launched.token}"},
                        timeout=2,
                    ).json()
                except (httpx.HTTPError, ValueError):
                    return False
                if r.json()["mode"] != "normal":
                    return False
                if sum(m["status"] == "alive" for m in members) != 3:
                    return False
            return True

        wait_for(joined, timeout=JOIN_DEADLINE_S, interval=0.5, what="three alive, synced nodes")
        yield launched


@pytest.fixture(autouse=True)
def _logs(request, cluster):
    with logs_on_failure(request, cluster):
        yield


@pytest.fixture
def kvs(cluster: Launch, tmp_path: Path):
    """kvs(*args, input=..., token=..., endpoints=...) -> CompletedProcess (text)."""

    def run(*args: str, input: str | None = None, token: str | None = None, endpoints=None):
        env = {
            **os.environ,
            "KVS_ENDPOINTS": endpoints or cluster.node_url(1),
            "KVS_CONFIG": str(tmp_path / "profiles.json"),
        }
        env.pop("KVS_TOKEN", None)
        if token != "":
            env["KVS_TOKEN"] = token or cluster.token
        return subprocess.run(
            [str(KVS), *args], input=input, env=env, capture_output=True, text=True, timeout=60
        )

    return run


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def test_keys_put_get_ls_history_ttl_meta_del(kvs):
    version = ok(kvs("put", "cli/a", '{"n": 1}')).strip()
    assert len(version) == 36
    assert json.loads(ok(kvs("get", "cli/a"))) == {"n": 1}
    ok(kvs("put", "cli/s", "-", input='"plain text"\n'))
    assert ok(kvs("get", "cli/s", "--raw")) == "plain text\n"
    assert ok(kvs("get", "cli/s")) == '"plain text"\n'
    entry = json.loads(ok(kvs("-o", "json", "get", "cli/a")))
    assert entry["version"] == version and entry["value"] == {"n": 1}
    ok(kvs("put", "cli/a", "2", "--cas", version))
    ok(kvs("put", "cli/dir/x", "true", "--ttl", "5m"))
    table = ok(kvs("ls", "cli/"))
    assert table.splitlines()[0].split()[:2] == ["KEY", "REVISION"]
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["cli/a", "cli/dir/x", "cli/s"]
    assert ok(kvs("ls", "cli/", "--keys")).split() == ["cli/a", "cli/dir/x", "cli/s"]
    assert ok(kvs("-o", "value", "ls", "cli/", "--separator", "/")).split() == [
        "cli/dir/",
        "cli/a",
        "cli/s",
    ]
    listed = json.loads(ok(kvs("-o", "json", "ls", "cli/", "--separator", "/")))
    assert listed["prefixes"] == ["cli/dir/"]
    history = ok(kvs("history", "cli/a")).splitlines()
    assert history[0].split()[:3] == ["VERSION", "TIME", "DELETED"] and len(history) == 3
    assert [
        v["value"] for v in json.loads(ok(kvs("-o", "json", "history", "cli/a")))["versions"]
    ] == [2, {"n": 1}]
    ok(kvs("ttl", "cli/a", "1h"))
    assert json.loads(ok(kvs("-o", "json", "get", "cli/a")))["expires_at"] is not None
    ok(kvs("ttl", "cli/a", "none"))
    assert json.loads(ok(kvs("-o", "json", "get", "cli/a")))["expires_at"] is None
    assert json.loads(ok(kvs("meta", "cli/a")))["owner"] == "root"
    assert ok(kvs("del", "cli/s")).strip() == "1"
    assert ok(kvs("del", "cli", "--recurse")).strip() == "2"
    assert kvs("get", "cli/a").returncode == 1


def test_exit_codes(kvs, cluster):
    assert kvs("get", "nothing/here").returncode == 1
    assert kvs("get").returncode == 2  # usage
    assert kvs("put", "x/y", "not json").returncode == 2
    assert kvs("put", "_sys/x", "1").returncode == 2  # the API's 400
    ok(kvs("put", "codes/k", "1"))
    conflict = kvs("put", "codes/k", "2", "--cas", "0")
    assert conflict.returncode == 3 and "conflict" in conflict.stderr
    assert kvs("get", "codes/k", token="kvs_not-a-token").returncode == 4
    reader = ok(kvs("token", "create", "root", "--scope", "read")).strip()
    assert ok(kvs("get", "codes/k", token=reader)).strip() == "1"
    assert kvs("put", "codes/k", "3", token=reader).returncode == 4
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = kvs("get", "codes/k", endpoints=dead)
    assert unreachable.returncode == 5 and "No endpoint answered" in unreachable.stderr


def test_the_next_endpoint_is_tried_when_the_first_is_dead(kvs, cluster):
    dead = f"http://127.0.0.1:{free_port()}"
    endpoints = f"{dead},{cluster.node_url(2)}"
    ok(kvs("--endpoints", endpoints, "put", "failover/k", '"via node2"'))
    assert ok(kvs("--endpoints", endpoints, "get", "failover/k", "--raw")) == "via node2\n"


def test_cluster_subcommands(kvs):
    members = ok(kvs("members")).splitlines()
    assert members[0].split()[:3] == ["NODE_ID", "URL", "STATUS"]
    assert sorted(line.split()[0] for line in members[1:]) == ["node1", "node2", "node3"]
    assert json.loads(ok(kvs("-o", "json", "status")))["node_id"] == "node1"
    assert "merkle_root" in ok(kvs("status"))
    assert json.loads(ok(kvs("whoami")))["username"] == "root"
    assert ok(kvs("pub", "news", '{"hi": 1}')).strip()
    assert "_KVS_COMPLETE" in ok(kvs("completion", "bash"))


def test_accounts_rules_and_schemas(kvs, cluster, tmp_path):
    ok(kvs("group", "create", "ops"))
    ok(kvs("user", "create", "carol", "--password-stdin", "--group", "ops", input="pw-carol-123\n"))
    assert "carol" in ok(kvs("-o", "value", "user", "list")).split()
    assert json.loads(ok(kvs("user", "get", "carol")))["groups"] == ["ops"]
    ok(kvs("user", "update", "carol", "--inactive"))
    ok(kvs("user", "update", "carol", "--active"))
    ok(kvs("group", "create", "devs", "--member", "carol"))
    ok(kvs("group", "update", "devs", "--remove", "carol"))
    assert "devs" in ok(kvs("group", "list"))
    issued = json.loads(ok(kvs("-o", "json", "token", "create", "carol", "--scope", "read")))
    assert issued["id"] in ok(kvs("-o", "value", "token", "list")).split()
    ok(kvs("token", "revoke", str(issued["id"])))
    ok(kvs("acl", "set", "team/", "--mode", "cdwr-dwr----", "--group", "ops"))
    assert json.loads(ok(kvs("acl", "get", "team/")))["group"] == "ops"
    assert "team/" in ok(kvs("acl", "list"))
    ok(kvs("acl", "delete", "team/"))
    assert kvs("acl", "get", "team/").returncode == 1
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"]}))
    ok(kvs("schema", "set", "people/", str(schema)))
    assert json.loads(ok(kvs("schema", "get", "people/")))["prefix"] == "people/"
    refused = kvs("put", "people/x", "{}")
    assert refused.returncode == 2 and "name" in refused.stderr
    assert "people/" in ok(kvs("schema", "list"))
    ok(kvs("schema", "delete", "people/"))
    ok(kvs("put", "people/x", "{}"))
    ok(kvs("group", "delete", "devs"))
    ok(kvs("user", "delete", "carol"))
    assert kvs("user", "get", "carol").returncode == 1


def test_login_saves_a_private_profile_that_later_commands_use(kvs, tmp_path):
    ok(kvs("user", "create", "dora", "--password-stdin", input="pw-dora-12345\n"))
    ok(kvs("login", "dora", "--password-stdin", input="pw-dora-12345\n", token=""))
    profiles = tmp_path / "profiles.json"
    assert stat.S_IMODE(profiles.stat().st_mode) == 0o600
    assert {"access", "refresh"} <= json.loads(profiles.read_text())["default"].keys()
    assert json.loads(ok(kvs("whoami", token="")))["username"] == "dora"
    ok(kvs("logout", token=""))
    assert kvs("whoami", token="").returncode == 4


def test_a_watch_moves_on_when_its_node_is_killed_and_never_goes_back_in_time(cluster):
    order = [cluster.node_url(2), cluster.node_url(1), cluster.node_url(3)]
    seen: list[dict] = []
    done = threading.Event()

    def follow() -> None:
        with Client(order, cluster.token, backoff=0.05) as watcher:
            for event in watcher.watch("moving/"):
                seen.append(event)
                if event["type"] == "put" and event["value"] == {"n": "last"}:
                    done.set()
                    return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    with Client([cluster.node_url(1)], cluster.token) as writer:
        wait_for(lambda: writer.put("moving/probe", 0) and any(
            e["key"] == "moving/probe" for e in seen), timeout=EVENT_DEADLINE_S, interval=0.5,
            what="the watch to be following node2")  # fmt: skip
        for n in range(5):
            for key in ("moving/a", "moving/b"):
                writer.put(key, {"n": n})
        wait_for(lambda: any(e.get("value") == {"n": 4} for e in seen), timeout=EVENT_DEADLINE_S,
                 what="the first writes through node2")  # fmt: skip
        for group in node_groups(cluster, 2):
            signal_group(group, signal.SIGKILL)
        for n in range(5, 10):
            for key in ("moving/a", "moving/b"):
                writer.put(key, {"n": n})
            time.sleep(0.2)
        writer.put("moving/z", {"n": "last"})
        assert done.wait(EVENT_DEADLINE_S * 2), [e.get("value") for e in seen[-5:]]
    for key in ("moving/a", "moving/b"):
        values = [e["value"]["n"] for e in seen if e.get("key") == key and e["type"] == "put"]
        assert values == sorted(values) and len(values) == len(set(values)), (key, values)
        assert values[-1] == 9, (key, values)


def test_async_client_writes_lists_and_watches(cluster):
    from kvsite_client import AsyncClient, NotFound

    async def scenario() -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        async with AsyncClient([dead, cluster.node_url(3)], cluster.token, backoff=0.01) as kv:
            put = await kv.put("async/a", {"n": 1})
            await kv.put("async/b", [2], ttl="5m")
            assert (await kv.get("async/a"))["version"] == put["version"]
            assert await kv.get_value("async/b") == [2]
            assert [item["key"] async for item in kv.list("async/", keys_only=True)] == [
                "async/a",
                "async/b",
            ]
            assert [v["value"] async for v in kv.history("async/a")] == [{"n": 1}]
            with pytest.raises(NotFound):
                await kv.get("async/none")
            events = kv.watch("async/", since=0)
            got = [await anext(events) for _ in range(2)]
            assert [(e["type"], e["key"]) for e in got] == [("put", "async/a"), ("put", "async/b")]
            await events.aclose()

    import asyncio

    asyncio.run(scenario())


def test_kvs_sub_prints_messages_that_kvs_pub_publishes(kvs, cluster, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # the socket opens on the next endpoint
    env = {
        **os.environ,
        "KVS_ENDPOINTS": f"{dead},{cluster.node_url(1)}",
        "KVS_TOKEN": cluster.token,
    }
    proc = subprocess.Popen(
        [str(KVS), "sub", "alerts/cli"], env=env, stdout=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:

        def delivered() -> bool:
            ok(kvs("pub", "alerts/cli", '{"used": 93}'))
            return any('"used":93' in line for line in lines)

        wait_for(delivered, timeout=EVENT_DEADLINE_S, interval=1.0, what="a message through sub")
        message = json.loads(next(line for line in lines if '"used":93' in line))
        assert (message["type"], message["topic"], message["data"]) == (
            "message",
            "alerts/cli",
            {"used": 93},
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_kvs_watch_prints_json_lines_and_outlives_its_node(kvs, cluster):
    """Last in this module: node2 is killed (the launcher restarts it)."""
    wait_for(lambda: health_ok(cluster.node_url(2)), timeout=JOIN_DEADLINE_S,
             what="node2 to be back from the earlier kill")  # fmt: skip
    ok(kvs("put", "cliwatch/a", '{"n": 0}'))
    env = {
        **os.environ,
        "KVS_ENDPOINTS": f"{cluster.node_url(2)},{cluster.node_url(3)}",
        "KVS_TOKEN": cluster.token,
    }
    proc = subprocess.Popen(
        [str(KVS), "watch", "cliwatch/", "--since", "0"], env=env, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()

    def values() -> list[int]:
        return [json.loads(line)["value"]["n"] for line in list(lines) if line.strip()]

    try:
        wait_for(lambda: node_groups(cluster, 2, quiet=True) and values() == [0],
                 timeout=EVENT_DEADLINE_S, what="the replay of cliwatch/a on node2")  # fmt: skip
        for group in node_groups(cluster, 2):
            signal_group(group, signal.SIGKILL)
        for n in range(1, 6):
            ok(kvs("put", "cliwatch/a", json.dumps({"n": n})))
        wait_for(lambda: values()[-1:] == [5], timeout=EVENT_DEADLINE_S * 2,
                 what="the watch to follow node3", explain=values)  # fmt: skip
        seen = values()
        assert seen == sorted(seen) and len(seen) == len(set(seen)), seen
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_kvs_query_pages_through_a_query_on_values(kvs, tmp_path):
    for name, city in [("ann", "Oslo"), ("bob", "Rome"), ("cid", "Oslo")]:
        ok(kvs("put", f"people2/{name}", json.dumps({"city": city})))
    body = {"prefix": "people2/", "where": [{"path": "city", "op": "eq", "value": "Oslo"}],
            "limit": 1}  # fmt: skip
    found = json.loads(ok(kvs("-o", "json", "query", "-", input=json.dumps(body))))
    assert [item["key"] for item in found["items"]] == ["people2/ann", "people2/cid"]
    assert ok(kvs("-o", "value", "query", "-", input=json.dumps(body))).split() == [
        "people2/ann",
        "people2/cid",
    ]
    bad = kvs("query", "-", input='{"prefix": "people2/", "where": [{"op": "nope"}]}')
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
