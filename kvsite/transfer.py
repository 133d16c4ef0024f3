"""`kvs export` and `kvs import`: JSON lines to and from a cluster over its API, with a token.

Both stream: export writes each page of the key listing as it arrives (the page size shrinks
when values are large), import reads lines as it sends them, a batch at a time, with a few
batches in flight; neither holds more than a few pages or batches in memory, however many keys.
Import goes through `POST /api/v1/import`, so the node's checks (scopes, token prefix, ACL,
schemas) apply to every line, and a line equal to what is stored is skipped: running the same
import twice writes nothing the second time. Uses httpx only (no Django).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

import httpx

PAGE_LIMIT = 1000  # the API's largest page
PAGE_TARGET_BYTES = 4 << 20  # pages shrink towards this many bytes when values are large
BATCH_ITEMS = 500
BATCH_BYTES = 1 << 20
CONCURRENCY = 4
RETRIES = 8
LINE_FIELDS = frozenset(("key", "value", "expires_at", "owner", "group", "mode"))


class TransferError(Exception):
    """The transfer stopped; `exit_code` follows the CLI's: 4 refused, 5 unavailable."""

    exit_code = 5


class Refused(TransferError):
    exit_code = 4


class Unavailable(TransferError):
    exit_code = 5


class Api:
    """The cluster's HTTP API at one of `endpoints` (the next one is tried when one is
    unreachable), with a bearer token; retries throttled (429) and unavailable (503) answers."""

    def __init__(
        self,
        endpoints: list[str],
        token: str | None,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.endpoints = [url.rstrip("/") for url in endpoints]
        limits = httpx.Limits(max_connections=CONCURRENCY * 2)
        self.http = httpx.Client(
            headers=headers, timeout=timeout, limits=limits, transport=transport
        )
        self._at = 0

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        """The answer (2xx or 4xx other than 401/403/429); raise Refused or Unavailable."""
        failures = 0
        while True:
            url = self.endpoints[self._at % len(self.endpoints)] + path
            try:
                answer = self.http.request(method, url, **kwargs)
            except httpx.TransportError as error:
                failures += 1
                if failures > len(self.endpoints) * 2:
                    raise Unavailable(f"cannot reach {url}: {error}") from None
                self._at += 1  # the next endpoint
                continue
            if answer.status_code in (401, 403):
                raise Refused(f"{method} {path}: {answer.status_code} {_detail(answer)}")
            if answer.status_code in (429, 503) or answer.status_code >= 500:
                failures += 1
                if failures > RETRIES:
                    raise Unavailable(f"{method} {path}: {answer.status_code} {_detail(answer)}")
                time.sleep(_retry_after(answer, failures))
                continue
            return answer


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", answer.text[:200]))
    except (ValueError, AttributeError):
        return answer.text[:200]


def _retry_after(answer: httpx.Response, failures: int) -> float:
    try:
        return min(float(answer.headers.get("Retry-After", "")), 30.0)
    except ValueError:
        return min(0.2 * 2**failures, 10.0)


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --- Export --------------------------------------------------------------------------------------


def export_lines(
    api: Api,
    out: IO[str],
    *,
    prefix: str = "",
    meta: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every live key under `prefix` the token may read as a JSON line to `out`, page by
    page in key order; return how many."""
    cursor, limit, count = None, PAGE_LIMIT, 0
    while True:
        params = {"prefix": prefix, "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = api.call("GET", "/api/v1/kv/", params=params)
        if answer.status_code != 200:
            raise TransferError(f"listing {prefix!r}: {answer.status_code} {_detail(answer)}")
        page = answer.json()
        for item in page["items"]:
            line = {"key": item["key"], "value": item["value"]}
            if meta or item.get("expires_at") is not None:
                line["expires_at"] = item.get("expires_at")
            if meta:
                line.update(owner=item["owner"], group=item["group"], mode=item["mode"])
            out.write(_dumps(line) + "\n")
            count += 1
        if progress is not None:
            progress(count)
        cursor = page.get("next_cursor")
        if not cursor:
            return count
        size = max(len(answer.content), 1)
        limit = max(1, min(PAGE_LIMIT, math.floor(limit * PAGE_TARGET_BYTES / size)))


# --- Import --------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    lines: int = 0
    written: int = 0
    skipped: int = 0
    refused: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in
                ("lines", "written", "skipped", "refused", "seconds")}  # fmt: skip


def _line_parse(text: str) -> dict:
    """One import line as an item; raise ValueError with the reason it is refused."""

    def no_constants(name):
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(text, parse_constant=no_constants)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str) or "value" not in data:
        raise ValueError('not an object with "key" (a string) and "value"')
    unknown = sorted(set(data) - LINE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    return data


class _Inline:
    """An executor that runs each call at once, in this thread (concurrency 1)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 (handed to the caller, as a pool does)
            future.set_exception(error)
        return future


def _batches(lines: Iterable[str], report: ImportReport) -> Iterator[list[tuple[int, dict | str]]]:
    """Numbered lines in batches of at most BATCH_ITEMS items and about BATCH_BYTES: each an
    item to send, or the reason (a string) the line is refused without being sent."""
    batch: list[tuple[int, dict | str]] = []
    size = 0
    for number, text in enumerate(lines, start=1):
        report.lines = number
        if not text.strip():
            continue
        try:
            item: dict | str = _line_parse(text)
        except ValueError as error:
            item = str(error)
        if batch and (len(batch) >= BATCH_ITEMS or size + len(text) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((number, item))
        size += len(text)
    if batch:
        yield batch


def import_lines(
    api: Api,
    lines: Iterable[str],
    *,
    refuse: Callable[[int, str], None],
    progress: Callable[[ImportReport], None] | None = None,
    concurrency: int = CONCURRENCY,
) -> ImportReport:
    """Send the lines in batches, `concurrency` at a time; call `refuse(line, reason)` for each
    refused line, in line order; return the counts."""
    report, started = ImportReport(), time.monotonic()
    pending: deque[tuple[list[tuple[int, dict | str]], Future | None]] = deque()

    def settle(batch: list[tuple[int, dict | str]], future: Future | None) -> None:
        answer = future.result() if future is not None else None
        if answer is None:
            results: Iterator[dict] = iter(())
        elif answer.status_code in (400, 413):  # the batch as a whole (e.g. a huge line)
            detail = f"{answer.status_code} {_detail(answer)}"
            results = iter(lambda: {"status": "refused", "detail": detail}, None)
        elif answer.status_code != 200:
            raise TransferError(f"POST /api/v1/import: {answer.status_code} {_detail(answer)}")
        else:
            results = iter(answer.json()["results"])
        for number, item in batch:
            result = (
                {"status": "refused", "detail": item} if isinstance(item, str) else next(results)
            )
            status = result["status"]
            setattr(report, status, getattr(report, status) + 1)
            if status == "refused":
                refuse(number, result.get("detail") or result.get("code", "refused"))
        if progress is not None:
            progress(report)

    with ThreadPoolExecutor(max_workers=concurrency) if concurrency > 1 else _Inline() as pool:
        try:
            for batch in _batches(lines, report):
                items = [item for _, item in batch if not isinstance(item, str)]
                future = None
                if items:
                    body = _dumps({"items": items}).encode()
                    future = pool.submit(api.call, "POST", "/api/v1/import", content=body)
                pending.append((batch, future))
                while len(pending) >= concurrency:
                    settle(*pending.popleft())
            while pending:
                settle(*pending.popleft())
        finally:
            for _, future in pending:
                if future is not None:
                    future.cancel()
    report.seconds = round(time.monotonic() - started, 3)
    return report
