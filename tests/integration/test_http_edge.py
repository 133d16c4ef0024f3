"""The HTTP edge of a real node: slow and oversized requests hold nothing and are refused in time,
and the node's uptime is the same whichever web worker answers."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import psutil
import pytest

from cluster.transport import HttpTransport, TransportError

from .helpers import Launch, kvs_up, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

HEADER_TIMEOUT_S = 5.0  # shortened for the test (the defaults are in kvsite/settings.py)
BODY_TIMEOUT_S = 8.0
MAX_HEADERS = 100
STALLS = 50  # connections of each kind: stalled mid-body and stalled mid-headers
ANSWER_WITHIN_S = 1.0
SLACK_S = 10.0  # how much later than its timeout a refusal may come on a loaded machine
UPTIME_TOLERANCE_S = 0.5
MERKLE_ROOT = {"level": 0, "nodes": [0]}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    env = {
        "KVS_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
        "KVS_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
        "KVS_HTTP_MAX_HEADERS": str(MAX_HEADERS),
        # Every stalled login must reach the point where it reads its body (on the unbounded
        # edge each would then hold an HTTP thread), not be turned away by the address limit.
        "KVS_THROTTLE_ANON": "",
    }
    with kvs_up(tmp_path_factory.mktemp("edge"), nodes=1, env=env) as launched:
        auth = {"Authorization": f"Bearer {launched.token}"}
        put = httpx.put(f"{launched.url}/api/v1/kv/edge/k", json={"n": 1}, headers=auth)
        assert put.status_code in (200, 201), put.text

        secret = (launched.data / "cluster_secret").read_text().strip()
        probe = HttpTransport(node_id="node1", secret=secret, timeout_s=5)

        def member() -> bool:  # its worker has written it into its member table
            try:
                probe.send(launched.url, "/cluster/internal/merkle", MERKLE_ROOT, to="node1")
            except TransportError:
                return False
            return True

        wait_for(member, timeout=60, what="node1's internal API to answer its own member")
        yield launched


# --- raw HTTP/1.1 on sockets ---------------------------------------------------------------------


def connect(launch: Launch) -> socket.socket:
    return socket.create_connection(("127.0.0.1", launch.port), timeout=10.0)


def stall_body(launch: Launch) -> socket.socket:
    """A login whose headers promise 200 bytes of body, of which only a few ever come."""
    sock = connect(launch)
    head = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    sock.sendall(head + b'{"username": "root", ')
    return sock


def stall_headers(launch: Launch) -> socket.socket:
    """A request whose header block never ends."""
    sock = connect(launch)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return sock


def still_open(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed `sock` yet."""
    sock.setblocking(False)
    try:
        return not sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def response_or_none(sock: socket.socket, timeout: float) -> tuple[int, dict, bytes] | None:
    """The (status, headers, body) the server answers on `sock`, or None if it closed without
    an answer; fails if neither happens within `timeout` seconds."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        body = response.read()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        return None
    except TimeoutError:
        pytest.fail(f"no answer and no close within {timeout:.0f} s")
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def closed_within(sock: socket.socket, timeout: float) -> bool:
    """Read `sock` until the server closes it (True) or `timeout` passes (False)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def send_request(launch: Launch, head: bytes) -> tuple[int, dict, bytes] | None:
    """Send `head` (a whole header block) and read the answer; None if the server closed."""
    with connect(launch) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            return None  # refused while still sending
        return response_or_none(sock, timeout=30.0)


def get_with_headers(launch: Launch, headers: list[tuple[str, str]]) -> bytes:
    lines = [b"GET /health HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [f"{name}: {value}".encode() for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def assert_refused(answer: tuple[int, dict, bytes] | None, status: int) -> None:
    """The request was not served: a JSON error with `status`, or a closed connection."""
    if answer is None:
        return
    code, headers, body = answer
    assert code == status, (code, body[:200])
    assert headers["content-type"].startswith("application/json")
    assert set(orjson.loads(body)) >= {"detail", "code"}


# --- answering while slow clients hang on --------------------------------------------------------


def timed(call) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start


def test_stalled_bodies_and_headers_leave_every_endpoint_answering(node: Launch) -> None:
    started = time.monotonic()
    stalled = [stall_body(node) for _ in range(STALLS)] + [
        stall_headers(node) for _ in range(STALLS)
    ]
    secret = (node.data / "cluster_secret").read_text().strip()
    auth = {"Authorization": f"Bearer {node.token}"}
    try:

        def health() -> None:
            with httpx.Client(timeout=ANSWER_WITHIN_S) as client:
                assert client.get(f"{node.url}/health").status_code == 200

        def get_key() -> None:
            with httpx.Client(timeout=ANSWER_WITHIN_S, headers=auth) as client:
                got = client.get(f"{node.url}/api/v1/kv/edge/k")
                assert got.status_code == 200 and got.json()["value"] == {"n": 1}

        def signed_merkle() -> None:
            with httpx.Client(trust_env=False) as client:
                # Internal endpoints answer members only: sign as the node's one member, itself.
                transport = HttpTransport(
                    node_id="node1", secret=secret, timeout_s=ANSWER_WITHIN_S, client=client
                )
                answer = transport.send(
                    node.url, "/cluster/internal/merkle", MERKLE_ROOT, to="node1"
                )
                assert isinstance(answer, dict) and answer

        # Each on a new connection, a few times over, so that every web worker is asked.
        for _ in range(4):
            for call in (health, get_key, signed_merkle):
                took = timed(call)
                assert took < ANSWER_WITHIN_S, f"{call.__name__} took {took:.2f} s"
        # The stalls were all being held while the node answered.
        assert time.monotonic() - started < HEADER_TIMEOUT_S, "too slow to prove anything"
        assert all(still_open(sock) for sock in stalled)
    finally:
        for sock in stalled:
            sock.close()


def test_a_stalled_body_gets_408_after_the_body_timeout(node: Launch) -> None:
    started = time.monotonic()
    with stall_body(node) as sock:
        answer = response_or_none(sock, timeout=BODY_TIMEOUT_S + SLACK_S)
        took = time.monotonic() - started
        assert answer is not None, "closed without an answer"
        status, headers, body = answer
        assert status == 408, body
        assert orjson.loads(body)["code"] == "request_timeout"
        assert headers["connection"] == "close"
        assert closed_within(sock, timeout=SLACK_S)
    assert took >= BODY_TIMEOUT_S - 0.5


def test_stalled_headers_are_closed_after_the_header_timeout(node: Launch) -> None:
    started = time.monotonic()
    with stall_headers(node) as partial, connect(node) as silent:
        assert closed_within(partial, timeout=HEADER_TIMEOUT_S + SLACK_S)
        assert closed_within(silent, timeout=SLACK_S)
        took = time.monotonic() - started
    assert took >= HEADER_TIMEOUT_S - 0.5


def test_an_idle_keep_alive_connection_is_closed(node: Launch) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = response_or_none(sock, timeout=30.0)
        assert answer is not None and answer[0] == 200
        assert closed_within(sock, timeout=5.0 + SLACK_S)  # uvicorn's keep-alive timeout: 5 s


# --- header limits -------------------------------------------------------------------------------


def test_an_8_mib_header_is_refused(node: Launch) -> None:
    answer = send_request(node, get_with_headers(node, [("X-Big", "a" * (8 * 1024 * 1024))]))
    assert_refused(answer, 431)


def test_5000_headers_are_refused(node: Launch) -> None:
    headers = [(f"X-H{i}", "v") for i in range(5000)]
    assert_refused(send_request(node, get_with_headers(node, headers)), 431)


def test_one_header_too_many_is_refused_and_the_limit_itself_is_served(node: Launch) -> None:
    # Host and Connection are two of them.
    at_limit = [(f"X-H{i}", "v") for i in range(MAX_HEADERS - 2)]
    answer = send_request(node, get_with_headers(node, at_limit))
    assert answer is not None and answer[0] == 200
    assert_refused(send_request(node, get_with_headers(node, [*at_limit, ("X-One", "more")])), 431)


def test_a_request_with_ordinary_headers_is_served(node: Launch) -> None:
    headers = [
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
        ("Accept", "application/json, text/plain, */*"),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Cookie", "session=" + "c" * 16 * 1024),  # a large but legitimate cookie
        ("X-Request-Id", "0b5e1a7e-3c6f-4d3e-9a51-0d0f5a2c9e11"),
    ]
    answer = send_request(node, get_with_headers(node, headers))
    assert answer is not None
    status, _, body = answer
    assert status == 200 and orjson.loads(body)["status"] == "ok"


# --- node uptime ---------------------------------------------------------------------------------


def web_workers(launch: Launch) -> set[int]:
    """The pids of the node's web worker processes (children of its web server)."""
    port = str(launch.port)
    for proc in psutil.Process(launch.proc.pid).children(recursive=True):
        try:
            cmdline = proc.cmdline()
            if port in cmdline and ("serve" in cmdline or "uvicorn" in cmdline):
                children = proc.children()
                return {p.pid for p in children if "spawn_main" in " ".join(p.cmdline())}
        except psutil.Error:
            continue
    return set()


def status_sample(launch: Launch, workers: set[int]) -> tuple[int, float, float] | None:
    """(worker pid, test clock at the answer, uptime_s) of one status request on a new
    connection, found by which worker holds the connection; None if no known worker does."""
    conn = http.client.HTTPConnection("127.0.0.1", launch.port, timeout=10.0)
    try:
        conn.connect()
        local_port = conn.sock.getsockname()[1]
        before = time.monotonic()
        conn.request("GET", "/api/v1/status", headers={"Authorization": f"Bearer {launch.token}"})
        response = conn.getresponse()
        uptime = orjson.loads(response.read())["uptime_s"]
        at = (before + time.monotonic()) / 2
        for pid in workers:
            try:
                held = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            if any(c.raddr and c.raddr.port == local_port for c in held):
                return pid, at, uptime
        return None
    finally:
        conn.close()


def test_uptime_is_the_nodes_whichever_worker_answers(node: Launch) -> None:
    workers = wait_for(
        lambda: len(web_workers(node)) == 2 and web_workers(node),
        timeout=30,
        what="two web workers",
    )
    # A worker that dies is replaced by a new one; its answers must still count from the start
    # of the node's web server.
    os.kill(min(workers), signal.SIGKILL)
    workers = wait_for(
        lambda: (
            (found := web_workers(node)) and len(found) == 2 and min(workers) not in found and found
        ),
        timeout=60,
        what="a replacement web worker",
    )
    samples: list[tuple[int, float, float]] = []

    def both_answered() -> bool:
        sample = status_sample(node, workers)
        if sample is not None:
            samples.append(sample)
        return len({pid for pid, _, _ in samples}) == 2

    wait_for(
        both_answered,
        timeout=60,
        interval=0.05,
        what="answers from both workers",
        explain=lambda: samples,
    )
    first = samples[0]
    for _, at, uptime in samples[1:]:
        assert uptime >= first[2]
        assert abs((uptime - first[2]) - (at - first[1])) < UPTIME_TOLERANCE_S, samples
    previous = samples[-1]
    for _ in range(10):
        sample = status_sample(node, workers)
        if sample is None:
            continue
        _, at, uptime = sample
        assert uptime >= previous[2], (previous, sample)
        assert abs((uptime - previous[2]) - (at - previous[1])) < UPTIME_TOLERANCE_S
        previous = sample
