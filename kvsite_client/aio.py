"""`AsyncClient`: the asynchronous kvsite client (httpx.AsyncClient), the same operations as
`Client`, each a coroutine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
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
from ._watch import WatchState
from .client import answer_error, ws_frame, ws_refusal, ws_url
from .errors import Unauthorized, Unavailable


class AsyncClient(Operations):
    """Like `Client`, for asyncio: `await client.get(key)`, `async for e in client.watch(p)`."""

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints_parse(endpoints)
        self.refresh_token, self.on_token = refresh_token, on_token
        self.retries, self.backoff, self.backoff_max = retries, backoff, backoff_max
        self.timeout = timeout
        self._current = 0
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, headers=BASE_HEADERS)
        self.token = token

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def endpoint(self) -> str:
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

    async def _run(self, call: Call) -> Any:
        try:
            return await self._attempts(call)
        except Unauthorized:
            if not self.refresh_token or call.path.startswith("/api/v1/auth/"):
                raise
            await self._refresh()
            return await self._attempts(call)

    async def _attempts(self, call: Call) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(backoff_s(attempt, base=self.backoff, cap=self.backoff_max))
            for index in self._order():
                try:
                    response = await self._http.request(
                        call.method,
                        self.endpoints[index] + call.path,
                        params=clean_params(call.params) or None,
                        json=call.json if call.content is None and call.json is not None else None,
                        content=call.content,
                    )
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

    async def _refresh(self) -> None:
        tokens = await self._attempts(
            Call("POST", "/api/v1/auth/refresh", json={"refresh": self.refresh_token})
        )
        self.token = tokens["access"]
        self.refresh_token = tokens.get("refresh", self.refresh_token)
        if self.on_token is not None:
            self.on_token(self.token)

    async def list(self, prefix: str = "", **options: Any) -> AsyncIterator[dict]:
        """Every item under `prefix`, following cursors (`keys_only`, `separator`, `limit`)."""
        async for page in self.pages(prefix, **options):
            for item in page["items"]:
                yield item

    async def pages(self, prefix: str = "", **options: Any) -> AsyncIterator[dict]:
        cursor = None
        while True:
            page = await self.list_page(prefix, cursor=cursor, **options)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def history(self, key: str) -> AsyncIterator[dict]:
        for version in (await self.history_page(key))["versions"]:
            yield version

    async def query(self, prefix: str = "", where: list[dict] | None = None, **options: Any):
        body = {"prefix": prefix, "where": where or [], **options}
        while True:
            page = await self.query_page(body)
            for item in page["items"]:
                yield item
            if not page.get("next_cursor"):
                return
            body = {**body, "cursor": page["next_cursor"]}

    async def watch(
        self, prefix: str = "", *, since: int | None = None, ready: bool = False
    ) -> AsyncIterator[dict]:
        """As `Client.watch`: reconnects by itself, never an older version after a newer one."""
        state = WatchState(prefix=prefix, since=since)
        failures = 0
        while True:
            for index in self._order():
                connected = False
                try:
                    async for frame in self._stream(index, state):
                        connected, failures = True, 0
                        taken = state.take(frame)
                        if taken is not None and (ready or taken.get("type") != "ready"):
                            yield taken
                except Unauthorized:
                    if not self.refresh_token:
                        raise
                    await self._refresh()
                    break
                except (httpx.TransportError, Unavailable):
                    if connected:
                        break
                    continue
                break
            else:
                failures += 1
                await asyncio.sleep(
                    backoff_s(min(failures, 6), base=self.backoff, cap=self.backoff_max)
                )

    async def _stream(self, index: int, state: WatchState) -> AsyncIterator[dict]:
        endpoint = self.endpoints[index]
        headers = {"Accept": "text/event-stream"}
        timeout = httpx.Timeout(self.timeout, read=60.0)
        async with self._http.stream(
            "GET", endpoint + "/api/v1/watch", params=state.params(endpoint),
            headers=headers, timeout=timeout,
        ) as response:  # fmt: skip
            if response.status_code != 200:
                await response.aread()
                raise answer_error(Call("GET", "/api/v1/watch"), response)
            self._current = index
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    yield json.loads(line[5:].strip())

    async def subscribe(self, topic: str) -> AsyncIterator[dict]:
        """As `Client.subscribe`: the messages of `topic`, reconnecting by itself."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        failures = 0
        while True:
            for index in self._order():
                url = ws_url(self.endpoints[index], topic)
                try:
                    async with connect(url, additional_headers=headers,
                                       open_timeout=self.timeout) as ws:  # fmt: skip
                        self._current, failures = index, 0
                        async for text in ws:
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
            await asyncio.sleep(
                backoff_s(max(failures, 1), base=self.backoff, cap=self.backoff_max)
            )
