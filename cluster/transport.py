"""How a node reaches a peer: a Transport, signed HTTP in production, in-memory nodes in tests."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Protocol

import httpx
import orjson

from kv.hlc import wall_ms

from .config import Config
from .signing import HEADER_SIGNATURE, BadSignature, sign_request, verify_response


class TransportError(Exception):
    """The peer could not be reached, or did not answer a valid, signed 200."""


class Transport(Protocol):
    """Sends one JSON message to a member's internal API and returns its JSON answer."""

    def send(self, member_url: str, path: str, payload: dict) -> dict:
        """The peer's answer to `payload` POSTed at `member_url` + `path`; raise TransportError."""
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

    def send(self, member_url: str, path: str, payload: dict) -> dict:
        """POST `payload` signed; the peer's answer once its signature checks out."""
        client = self._client or _shared_client()
        body = orjson.dumps(payload)
        request = client.build_request(
            "POST",
            member_url.rstrip("/") + path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=self.timeout_s,
        )
        signed = sign_request(
            self._secret,
            node_id=self.node_id,
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
            verify_response(
                self._secret,
                request_signature=signed[HEADER_SIGNATURE],
                status=response.status_code,
                body=response.content,
                headers=response.headers,
            )
            answer = orjson.loads(response.content)
        except (BadSignature, orjson.JSONDecodeError) as error:
            raise TransportError(f"{member_url}{path}: {error}") from error
        if not isinstance(answer, dict):
            raise TransportError(f"{member_url}{path}: the answer is not a JSON object")
        return answer


Handler = Callable[[str, dict], dict]


class FakeTransport:
    """Routes sends to in-memory nodes by URL; a URL in `down` fails like an unreachable host."""

    def __init__(self, routes: dict[str, Handler] | None = None) -> None:
        self.routes: dict[str, Handler] = dict(routes or {})
        self.down: set[str] = set()
        self.sent: list[tuple[str, str]] = []

    def route(self, member_url: str, handler: Handler) -> None:
        """Deliver messages for `member_url` to `handler(path, payload)`."""
        self.routes[member_url] = handler

    def send(self, member_url: str, path: str, payload: dict) -> dict:
        """The handler's answer, both ways through JSON as on the wire."""
        self.sent.append((member_url, path))
        handler = self.routes.get(member_url)
        if handler is None or member_url in self.down:
            raise TransportError(f"{member_url}: unreachable")
        answer = handler(path, orjson.loads(orjson.dumps(payload)))
        return orjson.loads(orjson.dumps(answer))
