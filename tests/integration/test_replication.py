"""Replication across three real nodes with auth on: push, anti-entropy, conflicts, tombstones,
security records (created, and removed: groups, memberships, users, ACL rules, schemas), a killed
and restarted node, TTL expiry.

One cluster serves the whole module; the tests run in file order and each uses its own keys.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from .helpers import Launch, health_ok, kvs_up, logs_on_failure, node_groups, signal_group
from .helpers import wait_for as _wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NODES = (1, 2, 3)
START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
SYNC_DEADLINE_S = 60.0
READ_DEADLINE_S = 10.0
CONVERGE_DEADLINE_S = 60.0
RECORD_DEADLINE_S = 15.0  # "within a few seconds", with slack for a loaded machine
RESTART_DEADLINE_S = 120.0  # the launcher's backoff, then uvicorn and Celery starting again
CATCH_UP_DEADLINE_S = 60.0
ANTI_ENTROPY_INTERVAL_S = 3.0  # the default KVS_ANTI_ENTROPY_INTERVAL
BULK_KEYS = 1000
WRITE_THREADS = 8
CONFLICT_WRITERS = 20

_cluster: Launch | None = None  # for `wait_for` to explain a timeout


def wait_for(check, *, timeout: float, what: str, interval: float = 0.2, explain=None):
    """helpers.wait_for, explaining a timeout with every node's status by default."""
    return _wait_for(
        check, timeout=timeout, what=what, interval=interval, explain=explain or _statuses
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """Three nodes with auth on; the launcher's random KVS_BOOTSTRAP_TOKEN is the root token."""
    global _cluster
    tmp = tmp_path_factory.mktemp("replication")
    env = {"KVS_AUTH_ENABLED": "true"}
    with kvs_up(tmp, nodes=3, env=env, start_deadline=START_DEADLINE_S) as launched:
        _cluster = launched
        try:
            yield launched
        finally:
            _cluster = None


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest, cluster: Launch) -> Iterator[None]:
    with logs_on_failure(request, cluster):
        yield


# --- Talking to the nodes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(cluster: Launch) -> Iterator[dict[int, httpx.Client]]:
    """Root clients of every node, by node index."""
    clients = {index: cluster.client(index) for index in NODES}
    yield clients
    for c in clients.values():
        c.close()


def _get(c: httpx.Client, path: str, **params) -> httpx.Response | None:
    """GET, or None if the node does not answer (down, restarting, overloaded)."""
    try:
        return c.get(path, params=params or None, timeout=5.0)
    except httpx.HTTPError:
        return None


def status_of(c: httpx.Client) -> dict | None:
    response = _get(c, "/api/v1/status")
    return response.json() if response is not None and response.status_code == 200 else None


def _statuses() -> object:
    """Each node's mode, members, keys and Merkle root (for timeout messages)."""
    if _cluster is None:
        return None
    seen = {}
    for index in NODES:
        with _cluster.client(index) as c:
            st = status_of(c)
        seen[index] = st and {k: st[k] for k in ("mode", "members", "keys", "merkle_root")}
    return seen


def roots_agree(root: dict[int, httpx.Client]) -> str | None:
    """The Merkle root if all nodes report the same one (and are up), else None."""
    roots = set()
    for c in root.values():
        st = status_of(c)
        if st is None:
            return None
        roots.add(st["merkle_root"])
    return roots.pop() if len(roots) == 1 else None


def value_on(c: httpx.Client, key: str) -> object:
    """The value of `key` on a node, or None if it is absent (or the node does not answer)."""
    response = _get(c, f"/api/v1/kv/{key}")
    return (
        response.json()["value"] if response is not None and response.status_code == 200 else None
    )


def absent_on(c: httpx.Client, key: str) -> bool:
    response = _get(c, f"/api/v1/kv/{key}")
    return response is not None and response.status_code == 404


def tombstone_on(c: httpx.Client, key: str) -> str | None:
    """The version id of the tombstone `key` holds on a node, or None if it holds none."""
    response = _get(c, f"/api/v1/history/{key}")
    if response is None or response.status_code != 200:
        return None
    newest = response.json()["versions"][0]
    return newest["version"] if newest["deleted"] else None


def keys_under(c: httpx.Client, prefix: str) -> list[str] | None:
    """Every live key under `prefix` on a node (following the cursor across pages), or None if
    the node does not answer 200."""
    keys, cursor = [], None
    while True:
        params = {"prefix": prefix, "keys": 1, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = _get(c, "/api/v1/kv/", **params)
        if response is None or response.status_code != 200:
            return None
        page = response.json()
        keys += [item["key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return keys


def stays(check, *, seconds: float, what: str) -> None:
    """Assert that `check()` holds on every poll for `seconds` (an observation window)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert check(), f"{what} stopped holding"
        time.sleep(0.5)


# --- The tests, in order -------------------------------------------------------------------------


def test_nodes_sync_join_and_accept_the_root_token(cluster: Launch, root) -> None:
    def ready() -> bool:
        for c in root.values():
            st = status_of(c)  # 401 on nodes 2 and 3 until the root token has replicated
            if st is None or st["mode"] != "normal" or st["members"]["alive"] != 3:
                return False
        return True

    wait_for(ready, timeout=SYNC_DEADLINE_S, what="three normal nodes, each with 3 alive members")
    for index in (2, 3):
        who = root[index].get("/api/v1/whoami")
        assert who.status_code == 200, who.text
        assert who.json()["username"] == "root"
        assert who.json()["superuser"] is True


def test_a_write_on_node1_is_readable_on_node3(root) -> None:
    written = root[1].put("/api/v1/kv/single/greeting", json={"hello": "from node1"})
    assert written.status_code == 201, written.text
    got = wait_for(
        lambda: value_on(root[3], "single/greeting"),
        timeout=READ_DEADLINE_S,
        what="node3 to read single/greeting",
    )
    assert got == {"hello": "from node1"}
    version = root[3].get("/api/v1/kv/single/greeting").json()["version"]
    assert version == written.json()["version"]


def test_a_thousand_writes_over_all_nodes_converge(cluster: Launch, root) -> None:
    local, opened = threading.local(), []

    def put(i: int) -> int:
        if not hasattr(local, "clients"):  # one client per node per thread
            local.clients = {n: cluster.client(n) for n in NODES}
            opened.extend(local.clients.values())
        c = local.clients[NODES[i % 3]]
        return c.put(f"/api/v1/kv/bulk/{i:04d}", json={"i": i}).status_code

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(WRITE_THREADS) as pool:
            codes = list(pool.map(put, range(BULK_KEYS)))
    finally:
        for c in opened:
            c.close()
    wrote_in = time.monotonic() - started
    assert [i for i, code in enumerate(codes) if code != 201] == []

    wait_for(lambda: roots_agree(root), timeout=CONVERGE_DEADLINE_S, what="equal Merkle roots")
    converged_in = time.monotonic() - started - wrote_in
    expected = [f"bulk/{i:04d}" for i in range(BULK_KEYS)]
    for index, c in root.items():
        assert keys_under(c, "bulk/") == expected, f"node{index} lists other keys"
    print(f"\n{BULK_KEYS} writes in {wrote_in:.1f} s; roots equal {converged_in:.1f} s later")


def test_concurrent_conflicting_writes_converge_to_one_version(cluster: Launch, root) -> None:
    key = "conflict/hot"
    start = threading.Barrier(CONFLICT_WRITERS)

    def write(writer: int) -> int:
        with cluster.client(NODES[writer % 3]) as c:
            c.get("/health")  # connect before the barrier, so the writes really overlap
            start.wait(timeout=60)
            return c.put(f"/api/v1/kv/{key}", json={"writer": writer}).status_code

    with ThreadPoolExecutor(CONFLICT_WRITERS) as pool:
        codes = list(pool.map(write, range(CONFLICT_WRITERS)))
    assert all(code in (200, 201) for code in codes), codes

    def one_version() -> tuple | None:
        seen = set()
        for c in root.values():
            response = _get(c, f"/api/v1/kv/{key}")
            if response is None or response.status_code != 200:
                return None
            body = response.json()
            seen.add((body["version"], body["value"]["writer"]))
        return seen.pop() if len(seen) == 1 else None

    version, winner = wait_for(
        one_version, timeout=CONVERGE_DEADLINE_S, what=f"one version of {key} on every node"
    )
    assert winner in range(CONFLICT_WRITERS)
    wait_for(lambda: roots_agree(root), timeout=CONVERGE_DEADLINE_S, what="equal Merkle roots")
    assert one_version() == (version, winner)  # and it stays the winner


def test_a_deleted_key_stays_deleted_everywhere(root) -> None:
    # One key deleted on another node than it was written on, after it has replicated; one
    # written and deleted at once, so that its peers may only ever see the tombstone.
    assert root[1].put("/api/v1/kv/deleted/replicated", json=1).status_code == 201
    wait_for(
        lambda: all(value_on(c, "deleted/replicated") == 1 for c in root.values()),
        timeout=READ_DEADLINE_S,
        what="deleted/replicated on every node",
    )
    assert root[3].delete("/api/v1/kv/deleted/replicated").status_code == 204
    assert root[2].put("/api/v1/kv/deleted/at-once", json=2).status_code == 201
    assert root[2].delete("/api/v1/kv/deleted/at-once").status_code == 204
    keys = ["deleted/replicated", "deleted/at-once"]

    def tombstones_everywhere() -> bool:
        # A 404 alone would also hold on a node the key never reached: ask for the tombstone.
        return all(absent_on(c, k) and tombstone_on(c, k) for c in root.values() for k in keys)

    wait_for(tombstones_everywhere, timeout=READ_DEADLINE_S, what="tombstones on every node")
    wait_for(lambda: roots_agree(root), timeout=CONVERGE_DEADLINE_S, what="equal Merkle roots")
    for k in keys:
        assert len({tombstone_on(c, k) for c in root.values()}) == 1, f"{k}: different tombstones"
    stays(
        tombstones_everywhere,
        seconds=2 * ANTI_ENTROPY_INTERVAL_S + 1,
        what="deleted keys staying deleted through anti-entropy rounds",
    )
    assert roots_agree(root)


def test_a_token_replicates_and_its_revocation_too(cluster: Launch, root) -> None:
    issued = root[1].post("/api/v1/tokens", json={"scopes": ["read"], "name": "replicated"})
    assert issued.status_code == 201, issued.text
    token_id, secret = issued.json()["id"], issued.json()["token"]
    holders = {index: cluster.client(index, secret) for index in NODES}
    try:

        def whoami(index: int) -> int | None:
            response = _get(holders[index], "/api/v1/whoami")
            return None if response is None else response.status_code

        assert whoami(1) == 200
        wait_for(
            lambda: whoami(2) == 200,
            timeout=RECORD_DEADLINE_S,
            what="node2 to accept a token created on node1",
        )
        revoked = root[2].delete(f"/api/v1/tokens/{token_id}")
        assert revoked.status_code == 204, revoked.text
        wait_for(
            lambda: whoami(1) == 401 and whoami(3) == 401,
            timeout=RECORD_DEADLINE_S,
            what="nodes 1 and 3 to refuse the token revoked on node2",
        )
        wait_for(lambda: whoami(2) == 401, timeout=RECORD_DEADLINE_S, what="node2 to refuse it")
        stays(
            lambda: all(whoami(index) == 401 for index in NODES),
            seconds=2.0,  # past the 1 s token cache of every process
            what="the revoked token being refused",
        )
    finally:
        for c in holders.values():
            c.close()


def test_users_groups_and_acl_rules_from_node1_are_enforced_on_node3(cluster: Launch, root) -> None:
    n1, n3 = root[1], root[3]
    for username in ("repl-alice", "repl-bob"):
        created = n1.post("/api/v1/users", json={"username": username})
        assert created.status_code == 201, created.text
    group = n1.post("/api/v1/groups", json={"name": "repl-team", "members": ["repl-alice"]})
    assert group.status_code == 201, group.text
    # Owner and group may do everything under guarded/; others may only read.
    rule = n1.put("/api/v1/acl/guarded/", json={"group": "repl-team", "mode": "cdwrcdwr---r"})
    assert rule.status_code == 201, rule.text
    secrets = {}
    for username in ("repl-alice", "repl-bob"):
        issued = n1.post("/api/v1/tokens", json={"user": username, "scopes": ["read", "write"]})
        assert issued.status_code == 201, issued.text
        secrets[username] = issued.json()["token"]
    alice, bob = cluster.client(3, secrets["repl-alice"]), cluster.client(3, secrets["repl-bob"])
    try:

        def arrived() -> bool:
            got_rule = _get(n3, "/api/v1/acl/guarded/")
            who_alice, who_bob = _get(alice, "/api/v1/whoami"), _get(bob, "/api/v1/whoami")
            return (
                got_rule is not None
                and got_rule.status_code == 200
                and got_rule.json()["group"] == "repl-team"
                and who_alice is not None
                and who_alice.status_code == 200
                and who_alice.json()["groups"] == ["repl-team"]
                and who_bob is not None
                and who_bob.status_code == 200
            )

        wait_for(
            arrived,
            timeout=RECORD_DEADLINE_S,
            what="node3 to know the rule, both users' tokens and alice's group",
        )
        # Each process re-reads ACL rules within KVS_POLICY_CACHE_SECONDS: poll until bob is
        # refused three times in a row, each time for a key nobody has created yet.
        attempt = itertools.count()

        def bob_refused() -> bool:
            return all(
                bob.put(f"/api/v1/kv/guarded/bob-{next(attempt)}", json=0).status_code == 403
                for _ in range(3)
            )

        wait_for(bob_refused, timeout=RECORD_DEADLINE_S, what="node3 to refuse bob under guarded/")
        created = alice.put("/api/v1/kv/guarded/by-alice", json={"owner": "alice"})
        assert created.status_code == 201, created.text
        meta = n3.get("/api/v1/kv/guarded/by-alice").json()
        assert (meta["owner"], meta["group"]) == ("repl-alice", "repl-team")
        assert bob.get("/api/v1/kv/guarded/by-alice").status_code == 200  # others: r
        assert bob.put("/api/v1/kv/guarded/by-alice", json=1).status_code == 403  # others: no w
        assert alice.put("/api/v1/kv/elsewhere/by-alice", json=1).status_code == 201  # no rule
    finally:
        alice.close()
        bob.close()


# --- Removals replicate exactly: groups, memberships, ACL rules, schemas -------------------------


def _json(c: httpx.Client, path: str) -> tuple[int, object] | None:
    """(status, body) of a GET, or None if the node does not answer."""
    response = _get(c, path)
    return None if response is None else (response.status_code, response.json())


def members_everywhere(root, group: str) -> dict[int, object]:
    """node index → the group's sorted members there (None: no such group, or no answer)."""
    seen = {}
    for index, c in root.items():
        got = _json(c, f"/api/v1/groups/{group}")
        seen[index] = sorted(got[1]["members"]) if got and got[0] == 200 else None
    return seen


def groups_of_everywhere(root, username: str) -> dict[int, object]:
    seen = {}
    for index, c in root.items():
        got = _json(c, f"/api/v1/users/{username}")
        seen[index] = sorted(got[1]["groups"]) if got and got[0] == 200 else got and got[0]
    return seen


def users_created(root, *usernames: str) -> None:
    for username in usernames:
        created = root[1].post("/api/v1/users", json={"username": username})
        assert created.status_code == 201, created.text


def same_everywhere(seen: dict[int, object], expected: object) -> bool:
    return all(value == expected for value in seen.values())


def test_a_group_deleted_and_created_again_is_empty_on_every_node(root) -> None:
    users_created(root, "gone-ann", "gone-bob")
    made = root[1].post(
        "/api/v1/groups", json={"name": "gone", "members": ["gone-ann", "gone-bob"]}
    )
    assert made.status_code == 201, made.text
    both = ["gone-ann", "gone-bob"]
    wait_for(
        lambda: same_everywhere(members_everywhere(root, "gone"), both),
        timeout=RECORD_DEADLINE_S,
        what="the group and its two members on every node",
        explain=lambda: members_everywhere(root, "gone"),
    )
    assert root[2].delete("/api/v1/groups/gone").status_code == 204
    wait_for(
        lambda: (
            same_everywhere(members_everywhere(root, "gone"), None)
            and all(same_everywhere(groups_of_everywhere(root, u), []) for u in both)
        ),
        timeout=RECORD_DEADLINE_S,
        what="the group gone from every node and from its former members",
        explain=lambda: [members_everywhere(root, "gone"), groups_of_everywhere(root, "gone-ann")],
    )
    remade = root[3].post("/api/v1/groups", json={"name": "gone"})
    assert remade.status_code == 201, remade.text
    assert remade.json()["members"] == []
    wait_for(
        lambda: same_everywhere(members_everywhere(root, "gone"), []),
        timeout=RECORD_DEADLINE_S,
        what="the new, empty group on every node",
        explain=lambda: members_everywhere(root, "gone"),
    )
    stays(
        lambda: (
            same_everywhere(members_everywhere(root, "gone"), [])
            and all(same_everywhere(groups_of_everywhere(root, u), []) for u in both)
        ),
        seconds=2 * ANTI_ENTROPY_INTERVAL_S + 1,
        what="the re-created group staying empty everywhere",
    )


def test_removed_memberships_and_a_deleted_user_are_gone_on_every_node(root) -> None:
    users_created(root, "rm-ann", "rm-bob", "rm-cy")
    made = root[1].post("/api/v1/groups", json={"name": "rm", "members": ["rm-ann", "rm-bob"]})
    assert made.status_code == 201, made.text
    added = root[1].patch("/api/v1/users/rm-cy", json={"groups": ["rm"]})
    assert added.status_code == 200, added.text
    everyone = ["rm-ann", "rm-bob", "rm-cy"]

    def members_are(expected: list[str]) -> bool:
        return same_everywhere(members_everywhere(root, "rm"), expected)

    def explain() -> object:
        return members_everywhere(root, "rm")

    wait_for(
        lambda: members_are(everyone), timeout=RECORD_DEADLINE_S, what="3 members", explain=explain
    )
    removed = root[2].patch("/api/v1/groups/rm", json={"remove": ["rm-ann"]})
    assert removed.status_code == 200, removed.text
    wait_for(
        lambda: members_are(["rm-bob", "rm-cy"]),
        timeout=RECORD_DEADLINE_S,
        what="rm-ann removed on every node",
        explain=explain,
    )
    left = root[3].patch("/api/v1/users/rm-bob", json={"groups": []})
    assert left.status_code == 200, left.text
    wait_for(
        lambda: members_are(["rm-cy"]),
        timeout=RECORD_DEADLINE_S,
        what="rm-bob's groups emptied on every node",
        explain=explain,
    )
    assert root[1].delete("/api/v1/users/rm-cy").status_code == 204
    wait_for(
        lambda: members_are([]) and same_everywhere(groups_of_everywhere(root, "rm-cy"), 404),
        timeout=RECORD_DEADLINE_S,
        what="rm-cy deleted on every node",
        explain=lambda: [explain(), groups_of_everywhere(root, "rm-cy")],
    )
    assert same_everywhere(groups_of_everywhere(root, "rm-ann"), [])


def test_a_deleted_acl_rule_is_gone_and_no_longer_enforced_on_every_node(cluster, root) -> None:
    users_created(root, "rule-dan")
    issued = root[1].post("/api/v1/tokens", json={"user": "rule-dan", "scopes": ["read", "write"]})
    assert issued.status_code == 201, issued.text
    # Nobody but superusers may create keys under ruled/.
    rule = root[1].put("/api/v1/acl/ruled/", json={"mode": "------------"})
    assert rule.status_code == 201, rule.text
    dan = {index: cluster.client(index, issued.json()["token"]) for index in NODES}
    attempt = itertools.count()

    def dan_may_create(index: int) -> int | None:
        try:
            return dan[index].put(f"/api/v1/kv/ruled/dan-{next(attempt)}", json=0).status_code
        except httpx.HTTPError:
            return None

    try:
        # Each process re-reads rules within KVS_POLICY_CACHE_SECONDS: three refusals in a row.
        wait_for(
            lambda: all(dan_may_create(i) == 403 for i in NODES for _ in range(3)),
            timeout=RECORD_DEADLINE_S,
            what="every node to refuse rule-dan under ruled/",
        )
        assert root[2].delete("/api/v1/acl/ruled/").status_code == 204

        def gone() -> bool:
            return all((_json(c, "/api/v1/acl/ruled/") or (0,))[0] == 404 for c in root.values())

        wait_for(gone, timeout=RECORD_DEADLINE_S, what="the rule gone from every node")
        wait_for(
            lambda: all(dan_may_create(i) == 201 for i in NODES for _ in range(3)),
            timeout=RECORD_DEADLINE_S,
            what="every node to let rule-dan create under ruled/ again",
        )
    finally:
        for c in dan.values():
            c.close()


def test_a_deleted_schema_is_gone_and_no_longer_enforced_on_every_node(root) -> None:
    made = root[1].put("/api/v1/schemas/typed/", json={"type": "integer"})
    assert made.status_code in (200, 201), made.text
    attempt = itertools.count()

    def accepts_text(index: int) -> int | None:
        try:
            key = f"/api/v1/kv/typed/t{next(attempt)}"
            return root[index].put(key, json="text").status_code
        except httpx.HTTPError:
            return None

    wait_for(
        lambda: all(accepts_text(i) == 400 for i in NODES for _ in range(3)),
        timeout=RECORD_DEADLINE_S,
        what="every node to enforce the schema",
    )
    assert root[3].delete("/api/v1/schemas/typed/").status_code == 204

    def gone() -> bool:
        return all((_json(c, "/api/v1/schemas/typed/") or (0,))[0] == 404 for c in root.values())

    wait_for(gone, timeout=RECORD_DEADLINE_S, what="the schema gone from every node")
    wait_for(
        lambda: all(accepts_text(i) == 201 for i in NODES for _ in range(3)),
        timeout=RECORD_DEADLINE_S,
        what="every node to accept text under typed/ again",
    )


@dataclass
class Writer:
    """Writes outage/NNNNN keys to nodes 1 and 2 in turn from a thread until stopped."""

    launch: Launch
    written: list[tuple[str, float]] = field(default_factory=list)  # key, monotonic time
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        clients = {index: self.launch.client(index) for index in (1, 2)}
        try:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                key = f"outage/{i:05d}"
                try:
                    code = clients[1 + i % 2].put(f"/api/v1/kv/{key}", json=i).status_code
                except httpx.HTTPError as error:
                    self.failures.append(f"{key}: {error!r}")
                    continue
                if code == 201:
                    self.written.append((key, time.monotonic()))
                else:
                    self.failures.append(f"{key}: HTTP {code}")
        finally:
            for c in clients.values():
                c.close()


def test_a_killed_node_is_restarted_and_catches_up(cluster: Launch, root) -> None:
    survivors = {index: node_groups(cluster, index) for index in (1, 2)}
    writer = Writer(cluster)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(writer.written) >= 20, timeout=30, what="the writer to get going")
        for group in node_groups(cluster, 3):
            signal_group(group, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: "kvs: node3 died" in cluster.output(),
            timeout=READ_DEADLINE_S,
            what="the launcher to notice node3's death",
        )
        wait_for(
            lambda: health_ok(cluster.node_url(3)),
            timeout=RESTART_DEADLINE_S,
            interval=0.5,
            what="the launcher to restart node3",
        )
        back_at = time.monotonic()
    finally:
        writer.stop.set()
        thread.join(timeout=60)
    assert writer.failures == [], writer.failures[:10]
    during = [key for key, at in writer.written if killed_at < at < back_at]
    assert during, "no write landed while node3 was down"
    assert cluster.proc.poll() is None, cluster.output()
    assert "kvs: node3 restarted" in cluster.output()
    for index, groups in survivors.items():
        assert node_groups(cluster, index) == groups, f"node{index} was restarted too"

    expected = sorted(key for key, _ in writer.written)

    def caught_up() -> bool:
        st = status_of(root[3])
        if st is None or st["mode"] != "normal" or st["members"]["alive"] != 3:
            return False
        if not roots_agree(root):
            return False
        listed = keys_under(root[3], "outage/")
        return listed is not None and set(listed).issuperset(expected)

    wait_for(caught_up, timeout=CATCH_UP_DEADLINE_S, what="node3 to catch up")
    assert keys_under(root[3], "outage/") == keys_under(root[1], "outage/")
    for key in during[:: max(1, len(during) // 10)]:  # a sample, read one by one
        assert value_on(root[3], key) == int(key.split("/")[1])
    print(
        f"\nnode3 down for {back_at - killed_at:.1f} s, {len(during)} of"
        f" {len(writer.written)} writes meanwhile"
    )


def test_an_expired_key_disappears_everywhere_with_one_tombstone(root) -> None:
    written = root[1].put("/api/v1/kv/ttl/short", params={"ttl": 2}, json="soon gone")
    assert written.status_code == 201, written.text
    expires_at = written.json().get("expires_at")
    assert expires_at is not None, written.json()

    def expired_everywhere() -> bool:
        # Reads hide the key once expires_at passes; the tombstone comes from the expiry task.
        return all(
            absent_on(c, "ttl/short") and tombstone_on(c, "ttl/short") for c in root.values()
        )

    wait_for(
        expired_everywhere,
        timeout=2 + RECORD_DEADLINE_S,
        what="ttl/short to be gone, as a tombstone, on every node",
    )
    wait_for(lambda: roots_agree(root), timeout=CONVERGE_DEADLINE_S, what="equal Merkle roots")
    # Not merely one tombstone winning everywhere: the one every node derives by itself.
    from kv.versions import EXPIRY_NAMESPACE

    derived = str(uuid.uuid5(EXPIRY_NAMESPACE, written.json()["version"]))
    tombstones = {index: tombstone_on(c, "ttl/short") for index, c in root.items()}
    assert set(tombstones.values()) == {derived}, tombstones
