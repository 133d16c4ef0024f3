"""`Client`: the synchronous kvsite client (httpx)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from ._base import (
    BASE_HEADERS,
    Call,
    Operations,
    answer,
    backoff_s,
    clean_params,
    endpoints_parse,
    may_retry,
    unclear,
    unreachable,
)
from ._watch import WatchState, sse_frames
from .errors import KvsError, Unauthorized, Unavailable, error_for


class Client(Operations):
    """A client of a kvsite cluster: every API operation, with endpoint failover.

    `endpoints` are tried in turn: a call moves to the next one when a node cannot be reached
    or answers 503, after each full round waiting a jittered, doubling backoff, for `retries`
    rounds. Writes move on only when they provably did not reach a node (the connection was
    never made, or a 503), or when they carry `cas`. With `refresh_token`, a 401 exchanges it
    for a new access token once (`on_token` is told the new one) and the call is made again.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_token: Callable[[str], None] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        backoff_max: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints_parse(endpoints)
        self.refresh_token, self.on_token = refresh_token, on_token
        self.retries, self.backoff, self.backoff_max = retries, backoff, backoff_max
        self.timeout = timeout
        self._current = 0  # the endpoint that answered last
        self._http = httpx.Client(timeout=timeout, transport=transport, headers=BASE_HEADERS)
        self.token = token

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """The endpoint calls go to first."""
        return self.endpoints[self._current]

    @property
    def token(self) -> str | None:
        """The bearer credential sent with every call."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value
        if value:
            self._http.headers["Authorization"] = f"Bearer {value}"
        else:
            self._http.headers.pop("Authorization", None)

    def _order(self) -> list[int]:
        count = len(self.endpoints)
        return [(self._current + step) % count for step in range(count)]

    def _run(self, call: Call) -> Any:
        try:
            return self._attempts(call)
        except Unauthorized:
            if not self.refresh_token or call.path.startswith("/api/v1/auth/"):
                raise
            self._refresh()
            return self._attempts(call)

    def _attempts(self, call: Call) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff_s(attempt, base=self.backoff, cap=self.backoff_max))
            for index in self._order():
                try:
                    response = self._send(index, call)
                    if response.status_code == 503:
                        raise answer_error(call, response)
                    result = answer(call, response)
                except (httpx.TransportError, Unavailable) as error:
                    if not may_retry(call, error):
                        raise unclear(self.endpoints[index], error) from error
                    last = error
                    continue
                self._current = index
                return result
        raise unreachable(self.endpoints, last)

    def _send(self, index: int, call: Call) -> httpx.Response:
        return self._http.request(
            call.method,
            self.endpoints[index] + call.path,
            params=clean_params(call.params) or None,
            json=call.json if call.content is None and call.json is not None else None,
            content=call.content,
        )

    def _refresh(self) -> None:
        tokens = self._attempts(
            Call("POST", "/api/v1/auth/refresh", json={"refresh": self.refresh_token})
        )
        self.token = tokens["access"]
        self.refresh_token = tokens.get("refresh", self.refresh_token)
        if self.on_token is not None:
            self.on_token(self.token)

    # --- iterators ------------------------------------------------------------------------------

    def list(
        self,
        prefix: str = "",
        *,
        keys_only: bool = False,
        separator: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict]:
        """Every item under `prefix`, in key order, following the pages' cursors."""
        for page in self.pages(prefix, keys_only=keys_only, separator=separator, limit=limit):
            yield from page["items"]

    def pages(self, prefix: str = "", **options: Any) -> Iterator[dict]:
        """Every page of a listing (`items`, `next_cursor`, and with a separator `prefixes`)."""
        cursor = None
        while True:
            page = self.list_page(prefix, cursor=cursor, **options)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def history(self, key: str) -> Iterator[dict]:
        """The versions of `key`, newest first."""
        yield from self.history_page(key)["versions"]

    def query(self, prefix: str = "", where: list[dict] | None = None, **options: Any):
        """Every item of a query on values (`order_by`, `limit`, `keys`), following cursors."""
        body = {"prefix": prefix, "where": where or [], **options}
        while True:
            page = self.query_page(body)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            body = {**body, "cursor": page["next_cursor"]}

    # --- realtime -------------------------------------------------------------------------------

    def watch(
        self, prefix: str = "", *, since: int | None = None, ready: bool = False
    ) -> Iterator[dict]:
        """The changes under `prefix` (`{"type": "put"|"delete", "key", "value", ...}`), forever.

        With `since`, first the latest state of every key changed after that revision. A broken
        stream is opened again by itself: on the same endpoint after the last revision seen, on
        another from a fresh replay of the prefix, and no key's older version ever follows a
        newer one. With `ready`, the `{"type": "ready"}` frames are yielded too.
        """
        state = WatchState(prefix=prefix, since=since)
        failures = 0
        while True:
            for index in self._order():
                connected = False
                try:
                    for frame in self._stream(index, state):
                        connected, failures = True, 0
                        taken = state.take(frame)
                        if taken is not None and (ready or taken.get("type") != "ready"):
                            yield taken
                except Unauthorized:
                    if not self.refresh_token:
                        raise
                    self._refresh()
                    break
                except (httpx.TransportError, Unavailable):
                    if connected:
                        break  # it broke after working: try the same endpoint first
                    continue
                break  # the stream ended cleanly: open it again
            else:
                failures += 1
                time.sleep(backoff_s(min(failures, 6), base=self.backoff, cap=self.backoff_max))

    def _stream(self, index: int, state: WatchState) -> Iterator[dict]:
        endpoint = self.endpoints[index]
        headers = {"Accept": "text/event-stream"}
        timeout = httpx.Timeout(self.timeout, read=60.0)  # keep-alives come every 15 s
        with self._http.stream(
            "GET", endpoint + "/api/v1/watch", params=state.params(endpoint),
            headers=headers, timeout=timeout,
        ) as response:  # fmt: skip
            if response.status_code != 200:
                response.read()
                raise answer_error(Call("GET", "/api/v1/watch"), response)
            self._current = index
            yield from sse_frames(response.iter_lines())

    def subscribe(self, topic: str) -> Iterator[dict]:
        """The messages published on `topic` from now on (a websocket), forever. A socket that
        cannot open moves to the next endpoint; one that breaks is opened again (messages
        published meanwhile are not delivered: pub/sub is at most once)."""
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        failures = 0
        while True:
            for index in self._order():
                url = ws_url(self.endpoints[index], topic)
                try:
                    with connect(url, additional_headers=self._ws_headers(),
                                 open_timeout=self.timeout) as ws:  # fmt: skip
                        self._current, failures = index, 0
                        for text in ws:
                            yield ws_frame(text)
                except InvalidStatus as refused:
                    raise ws_refusal(refused) from None
                except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                    continue
                break
            else:
                failures += 1
                if failures > self.retries:
                    raise unreachable(self.endpoints, None)
            time.sleep(backoff_s(max(failures, 1), base=self.backoff, cap=self.backoff_max))

    def _ws_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def ws_url(endpoint: str, topic: str) -> str:
    """The pub/sub websocket URL of `topic` at `endpoint`."""
    from ._base import key_path

    return endpoint.replace("http", "ws", 1) + f"/ws/v1/pubsub/{key_path(topic)}"


def ws_frame(text: str | bytes) -> dict:
    """A pub/sub frame; an error frame raises."""
    frame = json.loads(text)
    if frame.get("type") == "error":
        raise error_for(400, frame)
    return frame


def ws_refusal(refused) -> KvsError:
    """The typed error of a refused handshake."""
    response = refused.response
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    return error_for(response.status_code, body)


def answer_error(call: Call, response: httpx.Response) -> KvsError:
    """The exception of an error answer."""
    try:
        answer(call, response)
    except KvsError as error:
        return error
    return error_for(response.status_code, {})
