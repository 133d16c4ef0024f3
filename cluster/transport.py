"""How a node reaches a peer: a Transport, signed HTTP in production, in-memory nodes in tests."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Protocol

import httpx
import orjson

from kv.hlc import wall_ms

from .compression import (
    HEADER_ACCEPT,
    HEADER_ENCODING,
    MAX_ANSWER_BYTES,
    ZSTD,
    BadEncoding,
    body_decode,
    body_encode,
)
from .config import Config
from .metrics import wire_counted
from .signing import ANY_NODE, HEADER_SIGNATURE, BadSignature, sign_request, verify_response


class TransportError(Exception):
    """The peer could not be reached, or did not answer a valid, signed 200."""


class Transport(Protocol):
    """Sends one JSON message to a member's internal API and returns its JSON answer."""

    def send(self, member_url: str, path: str, payload: dict, *, to: str) -> dict:
        """The answer of the node `to` (its id; ANY_NODE for a seed whose id we do not know yet)
        to `payload` POSTed at `member_url` + `path`; raise TransportError."""
        ...


_client_lock = threading.Lock()
_client: tuple[int, httpx.Client] | None = None


def _shared_client() -> httpx.Client:
    """This process's httpx client, so that connections to peers are reused between rounds."""
    global _client
    with _client_lock:
        if _client is None or _client[0] != os.getpid():
            # Peers are reached directly: no HTTP_PROXY from the environment in between.
            _client = (os.getpid(), httpx.Client(trust_env=False))
        return _client[1]


class HttpTransport:
    """Signed JSON over HTTP (httpx), with a short timeout and the process's connection pool."""

    def __init__(
        self,
        *,
        node_id: str,
        secret: str,
        timeout_s: float = 1.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.node_id = node_id
        self._secret = secret
        self.timeout_s = timeout_s
        self._client = client

    @classmethod
    def from_config(cls, config: Config) -> HttpTransport:
        return cls(node_id=config.node_id, secret=config.secret, timeout_s=config.timeout_s)

    def __repr__(self) -> str:
        return f"HttpTransport(node_id={self.node_id!r})"  # never the secret

    def send(self, member_url: str, path: str, payload: dict, *, to: str) -> dict:
        """POST `payload` signed for the node `to`; its answer once the signature checks out
        (signed by `to` itself, unless `to` is ANY_NODE)."""
        client = self._client or _shared_client()
        plain = orjson.dumps(payload)
        body, encoding = body_encode(plain)
        wire_counted(path=path, direction="sent", wire=len(body), plain=len(plain))
        request = client.build_request(
            "POST",
            member_url.rstrip("/") + path,
            content=body,
            headers={"Content-Type": "application/json", HEADER_ACCEPT: ZSTD, **encoding},
            timeout=self.timeout_s,
        )
        signed = sign_request(
            self._secret,
            node_id=self.node_id,
            target=to,
            method="POST",
            path=request.url.raw_path.decode("ascii"),
            body=body,
            now=wall_ms(),
        )
        request.headers.update(signed)
        try:
            response = client.send(request)
        except httpx.HTTPError as error:
            raise TransportError(f"{member_url}: {type(error).__name__}") from error
        if response.status_code != 200:
            raise TransportError(f"{member_url}{path}: HTTP {response.status_code}")
        try:
            answered_by = verify_response(
                self._secret,
                request_signature=signed[HEADER_SIGNATURE],
                status=response.status_code,
                body=response.content,
                headers=response.headers,
            )
            content = body_decode(
                response.content, response.headers.get(HEADER_ENCODING), limit=MAX_ANSWER_BYTES
            )
            wire_counted(
                path=path, direction="received", wire=len(response.content), plain=len(content)
            )
            answer = orjson.loads(content)
        except (BadSignature, BadEncoding, orjson.JSONDecodeError) as error:
            raise TransportError(f"{member_url}{path}: {error}") from error
        if to != ANY_NODE and answered_by != to:
            raise TransportError(f"{member_url}{path}: answered by {answered_by!r}, not {to!r}")
        if not isinstance(answer, dict):
            raise TransportError(f"{member_url}{path}: the answer is not a JSON object")
        return answer


def node_id_at(url: str, *, timeout_s: float = 1.0, client: httpx.Client | None = None) -> str:
    """The node id that the node at `url` states on its (unsigned) `/health`.

    For talking to a node that is not a member (yet): requests are then signed for that id, and
    its answers must be signed by it, so a wrong id only makes the exchange fail."""
    client = client or _shared_client()
    try:
        response = client.get(url.rstrip("/") + "/health", timeout=timeout_s)
        node_id = response.json().get("node_id") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as error:
        raise TransportError(f"{url}/health: {type(error).__name__}") from error
    if not isinstance(node_id, str) or not node_id:
        raise TransportError(f"{url}/health: no node id")
    return node_id


Handler = Callable[[str, dict], dict]


class FakeTransport:
    """Routes sends to in-memory nodes by URL; a URL in `down` fails like an unreachable host.

    A route registered with a node id refuses, as a real node does (401), a message meant for
    another node; ANY_NODE passes."""

    def __init__(self, routes: dict[str, Handler] | None = None) -> None:
        self.routes: dict[str, Handler] = dict(routes or {})
        self.ids: dict[str, str] = {}
        self.down: set[str] = set()
        self.sent: list[tuple[str, str]] = []
        self.targets: list[str] = []

    def route(self, member_url: str, handler: Handler, *, node_id: str | None = None) -> None:
        """Deliver messages for `member_url` to `handler(path, payload)`."""
        self.routes[member_url] = handler
        if node_id is not None:
            self.ids[member_url] = node_id

    def send(self, member_url: str, path: str, payload: dict, *, to: str) -> dict:
        """The handler's answer, both ways through JSON as on the wire."""
        self.sent.append((member_url, path))
        self.targets.append(to)
        handler = self.routes.get(member_url)
        if handler is None or member_url in self.down:
            raise TransportError(f"{member_url}: unreachable")
        if to not in (ANY_NODE, self.ids.get(member_url, to)):
            raise TransportError(f"{member_url}{path}: HTTP 401")
        answer = handler(path, orjson.loads(orjson.dumps(payload)))
        return orjson.loads(orjson.dumps(answer))
