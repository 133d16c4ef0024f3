"""GET /metrics of a real three-node cluster: promtool finds it clean, prometheus_client parses
it, its counters are the node's (every web worker's and the Celery worker's together, whichever
worker answers the scrape), a killed web worker's open sockets stop counting while its counters
stay, and a real Prometheus server scrapes every node.

One cluster serves the whole module; the tests run in file order and each uses its own keys.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

from .helpers import Launch, free_port, kvs_up, logs_on_failure, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

START_DEADLINE_S = 180.0  # three nodes, one after the other, on a loaded 2-core machine
REPLICATE_DEADLINE_S = 60.0
SCRAPE_DEADLINE_S = 90.0  # Prometheus starting, then three scrapes a second apart
RESTART_DEADLINE_S = 60.0  # uvicorn noticing a dead worker and starting another
REQUEST_TIMEOUT_S = 30.0
KEY_ROUTE = "/api/v1/kv/<kvkey:key>"
BATCH = 60  # PUTs per round, each on a new connection, so that the kernel spreads them
WRITERS = 6
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """Three nodes, two web workers each (the launcher's default)."""
    tmp = tmp_path_factory.mktemp("metrics")
    with kvs_up(tmp, nodes=3, args=["--workers", "2"], start_deadline=START_DEADLINE_S) as launch:
        yield launch


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest, cluster: Launch) -> Iterator[None]:
    with logs_on_failure(request, cluster):
        yield


# --- Reading metrics -----------------------------------------------------------------------------


def fresh_client(launch: Launch, index: int) -> httpx.Client:
    """A client that opens a new connection per request: each may reach either web worker."""
    return httpx.Client(
        base_url=launch.node_url(index),
        headers={"Authorization": f"Bearer {launch.token}", "Connection": "close"},
        limits=httpx.Limits(max_keepalive_connections=0),
        timeout=REQUEST_TIMEOUT_S,
        trust_env=False,
    )


def scrape(launch: Launch, index: int) -> str:
    with fresh_client(launch, index) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` in `text` whose labels include `labels`."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def per_process(launch: Launch, index: int, prefix: str, name: str, **labels) -> dict[int, float]:
    """pid -> the sum of the samples `name` (with `labels`) in that process's `prefix*` files of
    node `index`'s metrics directory (non-zero ones only)."""
    found = {}
    for path in (launch.data / f"node{index}" / "metrics").glob(f"{prefix}*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        total = sum(
            s.value
            for family in MultiProcessCollector.merge([str(path)])
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
        if total:
            found[pid] = found.get(pid, 0) + total
    return found


def puts(launch: Launch, index: int, count: int) -> int:
    """PUT `count` new keys on node `index`, each on a new connection; how many answered 201."""

    def put(key: str) -> int:
        with fresh_client(launch, index) as client:
            return client.put(f"/api/v1/kv/metrics/{key}", json={"k": key}).status_code

    with ThreadPoolExecutor(WRITERS) as pool:
        codes = list(pool.map(put, [uuid.uuid4().hex for _ in range(count)]))
    assert set(codes) == {201}, codes
    return len(codes)


def cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return []


# --- The tests -----------------------------------------------------------------------------------


def test_every_nodes_metrics_are_clean_for_promtool_and_parse(cluster: Launch):
    for index in (1, 2, 3):
        text = scrape(cluster, index)
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout + checked.stderr == b""  # not even a lint warning
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert all(name.startswith("kvs_") for name in families)
        expected = {"kvs_keys", "kvs_revision", "kvs_members", "kvs_node_info", "kvs_writes"}
        assert expected <= set(families)
        assert value(text, "kvs_node_info", node_id=f"node{index}") == 1
        wait_for(
            lambda i=index: value(scrape(cluster, i), "kvs_members", status="alive") == 3,
            timeout=REPLICATE_DEADLINE_S,
            what=f"node{index} to count three alive members",
        )


def test_counters_are_every_workers_together_whichever_worker_answers(cluster: Launch):
    put_201 = {"method": "PUT", "route": KEY_ROUTE, "status": "201"}
    before = value(scrape(cluster, 1), "kvs_http_requests_total", **put_201)
    sent = 0

    def web_workers_that_served() -> dict[int, float]:
        return per_process(cluster, 1, "counter_", "kvs_http_requests_total", **put_201)

    def both_workers_served() -> bool:
        nonlocal sent
        sent += puts(cluster, 1, BATCH)
        return len(web_workers_that_served()) >= 2

    wait_for(both_workers_served, timeout=120, what="both web workers of node1 to serve PUTs")
    served = web_workers_that_served()
    assert sum(served.values()) == before + sent
    for _ in range(8):  # new connections: the scrapes too are answered by either worker
        text = scrape(cluster, 1)
        assert value(text, "kvs_http_requests_total", **put_201) == before + sent
        assert value(text, "kvs_writes_total", origin="local") >= sent

    # Pushes run in node1's Celery worker: its figures are in the web workers' answer too.
    def pushed_to_node2() -> float:
        return value(scrape(cluster, 1), "kvs_replication_push_versions_total", peer="node2")

    wait_for(lambda: pushed_to_node2() >= sent, timeout=REPLICATE_DEADLINE_S, what="pushes")
    pushers = per_process(cluster, 1, "counter_", "kvs_replication_push_batches_total")
    assert pushers and not set(pushers) & set(served)
    assert all("celery" in " ".join(cmdline(pid)) for pid in pushers), pushers
    wait_for(
        lambda: value(scrape(cluster, 2), "kvs_writes_total", origin="replicated") >= sent,
        timeout=REPLICATE_DEADLINE_S,
        what="node2 to count node1's writes as replicated",
    )


def test_a_killed_web_worker_stops_counting_its_sockets_but_keeps_its_counts(cluster: Launch):
    url = cluster.node_url(1).replace("http://", "ws://") + "/ws/v1/watch"
    sockets = []
    with ExitStack() as open_sockets:
        while True:  # open watches until both web workers hold some
            ws = open_sockets.enter_context(
                ws_connect(f"{url}?prefix=quiet/&token={cluster.token}", open_timeout=30)
            )
            assert '"ready"' in ws.recv(timeout=30)
            sockets.append(ws)
            held = per_process(cluster, 1, "gauge_livesum_", "kvs_websockets_open", kind="watch")
            if len(held) >= 2 or len(sockets) >= 40:
                break
        assert len(held) >= 2, held
        text = scrape(cluster, 1)
        assert value(text, "kvs_websockets_open", kind="watch") == len(sockets)
        requests_before = value(text, "kvs_http_requests_total")
        victim = min(held)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            text = scrape(cluster, 1)
            return value(text, "kvs_websockets_open", kind="watch") == len(sockets) - held[victim]

        wait_for(replaced, timeout=RESTART_DEADLINE_S, what="the dead worker's sockets to go")
        metrics = cluster.data / "node1" / "metrics"
        assert not (metrics / f"gauge_livesum_{victim}.db").exists()
        assert (metrics / f"counter_{victim}.db").exists()
        assert value(scrape(cluster, 1), "kvs_http_requests_total") >= requests_before


def prometheus_query(port: int, query: str) -> list[dict]:
    try:
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5
        ).json()
    except (httpx.HTTPError, ValueError):
        return []
    return answer.get("data", {}).get("result", []) if answer.get("status") == "success" else []


def test_a_prometheus_server_scrapes_every_node(cluster: Launch, tmp_path: Path):
    port = free_port()
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in cluster.ports)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: kvs\n    static_configs:\n      - targets: [{targets}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def nodes_seen() -> set[str]:
            return {r["metric"].get("node_id") for r in prometheus_query(port, "kvs_node_info")}

        wait_for(
            lambda: nodes_seen() == {"node1", "node2", "node3"},
            timeout=SCRAPE_DEADLINE_S,
            what="Prometheus to hold kvs_node_info of every node",
            explain=lambda: (nodes_seen(), (tmp_path / "prometheus.log").read_text()[-2000:]),
        )
        ups = prometheus_query(port, "up")
        assert sorted(float(r["value"][1]) for r in ups) == [1.0, 1.0, 1.0]
        keys = prometheus_query(port, "kvs_keys")
        assert {r["metric"]["instance"] for r in keys} == {f"127.0.0.1:{p}" for p in cluster.ports}
        node1 = f"127.0.0.1:{cluster.port}"
        assert [float(r["value"][1]) >= 1 for r in keys if r["metric"]["instance"] == node1] == [
            True
        ]  # the PUTs of the tests above
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
