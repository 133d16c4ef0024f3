"""What `Client` and `AsyncClient` share: the requests each operation makes, how answers become
values or exceptions, and when a failed request may be sent again. Only the I/O differs between
the two clients (httpx's own shape)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from .errors import KvsError, RateLimited, Unavailable, error_for

DEFAULT_ENDPOINT = "http://127.0.0.1:8001"
BASE_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = Any  # any JSON value


def key_path(key: str) -> str:
    """`key` percent-encoded for a URL path ('/' kept)."""
    return quote(key, safe="/")


def endpoints_parse(endpoints: str | Sequence[str] | None) -> list[str]:
    """Endpoint URLs from a list or a comma-separated string (default: KVS_ENDPOINTS, then
    http://127.0.0.1:8001)."""
    if endpoints is None:
        endpoints = os.environ.get("KVS_ENDPOINTS") or DEFAULT_ENDPOINT
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    urls = [url.strip().rstrip("/") for url in endpoints if url.strip()]
    if not urls:
        raise ValueError("Give at least one endpoint URL.")
    return urls


@dataclass
class Call:
    """One API request and how to read its answer."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    decode: Callable[[httpx.Response], Any] | None = None  # default: the JSON body, or None
    retry_write: bool = False  # a write that may be sent again after an unclear failure (cas)
    missing_ok: bool = False  # a 404 answers None instead of raising

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT or self.retry_write


def answer(call: Call, response: httpx.Response) -> Any:
    """The value of a success answer; raise the typed exception of an error answer."""
    if response.status_code >= 400:
        if call.missing_ok and response.status_code == 404:
            return None
        raise response_error(response)
    if call.decode is not None:
        return call.decode(response)
    if not response.content:
        return None
    return response.json()


def response_error(response: httpx.Response) -> KvsError:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:200] or f"HTTP {response.status_code}"}
    error = error_for(response.status_code, body)
    if isinstance(error, RateLimited):
        try:
            error.retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            pass
    return error


def may_retry(call: Call, error: Exception) -> bool:
    """Whether `call` may go to the next endpoint after `error`.

    A connection that was never made (refused, no route, DNS, connect timeout) never reached a
    node, and a 503 is a node saying it did not act: any call may be sent again. After any other
    transport failure the request may have been applied, so only reads and writes guarded by
    `cas` (applied twice, the second answers 409) are sent again.
    """
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, Unavailable)):
        return True
    if isinstance(error, httpx.TransportError):
        return call.idempotent
    return False


def backoff_s(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before round `attempt` (1, 2, ...) over the endpoints: exponential,
    jittered."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def unreachable(endpoints: list[str], last: Exception | None) -> Unavailable:
    if isinstance(last, Unavailable):
        return last
    reason = f": {last}" if last is not None else ""
    return Unavailable(f"No endpoint answered ({', '.join(endpoints)}){reason}", code="unreachable")


def unclear(endpoint: str, error: Exception) -> Unavailable:
    """A write whose request was sent but not answered: it may or may not have been applied."""
    return Unavailable(
        f"The request to {endpoint} failed after it was sent, so it may have been applied"
        f" (it is not sent again without cas): {error}",
        code="unclear",
    )


def raw_value(response: httpx.Response) -> JSON:
    return json.loads(response.content)


def exists(response: httpx.Response) -> bool:
    return response.status_code == 200


def ttl_text(ttl: int | float | str | None) -> str | None:
    if ttl is None:
        return None
    return str(int(ttl)) if isinstance(ttl, (int, float)) else ttl


class Operations:
    """Every operation of the API, as calls handed to `_run` (which the sync client answers with
    the value and the async client with an awaitable of it)."""

    def _run(self, call: Call) -> Any:  # pragma: no cover - each client's own
        raise NotImplementedError

    # --- keys -----------------------------------------------------------------------------------

    def get(self, key: str) -> dict:
        """The entry of `key`: `{"key","value","version","timestamp","revision","expires_at",...}`.
        NotFound if absent, deleted or expired."""
        return self._run(Call("GET", f"/api/v1/kv/{key_path(key)}"))

    def get_value(self, key: str) -> JSON:
        """The value of `key` alone."""
        return self._run(
            Call("GET", f"/api/v1/kv/{key_path(key)}", params={"raw": "1"}, decode=raw_value)
        )

    def exists(self, key: str) -> bool:
        """Whether `key` exists (a HEAD)."""
        return (
            self._run(Call("HEAD", f"/api/v1/kv/{key_path(key)}", decode=exists, missing_ok=True))
            or False
        )

    def put(
        self, key: str, value: JSON, *, ttl: int | str | None = None, cas: str | None = None
    ) -> dict:
        """Store `value` as the newest version of `key`: `{"key","version","timestamp",
        "revision"}`. `ttl`: seconds or `90s`/`5m`/`2h`; `cas`: the expected current version
        (`"0"`: only if absent), Conflict otherwise."""
        params = {"ttl": ttl_text(ttl), "cas": cas}
        body = json.dumps(value, ensure_ascii=False).encode()
        return self._run(
            Call(
                "PUT",
                f"/api/v1/kv/{key_path(key)}",
                params=params,
                content=body,
                retry_write=cas is not None,
            )  # fmt: skip
        )

    def put_raw(self, key: str, body: bytes, *, ttl=None, cas: str | None = None) -> dict:
        """Like `put`, with the value given as JSON text."""
        params = {"ttl": ttl_text(ttl), "cas": cas}
        return self._run(
            Call(
                "PUT",
                f"/api/v1/kv/{key_path(key)}",
                params=params,
                content=body,
                retry_write=cas is not None,
            )  # fmt: skip
        )

    def refresh(self, key: str, ttl: int | str | None) -> dict:
        """A new version of `key` with the same value and an expiry `ttl` from now (None: none)."""
        return self._run(Call("PATCH", f"/api/v1/kv/{key_path(key)}", json={"ttl": ttl}))

    def delete(self, key: str, *, cas: str | None = None, recurse: bool = False) -> int:
        """Delete `key` (with `recurse`, also every key under `key/`); how many were deleted."""
        if recurse:
            call = Call("DELETE", f"/api/v1/kv/{key_path(key)}", params={"recurse": "1"},
                        decode=lambda r: r.json()["deleted"])  # fmt: skip
        else:
            call = Call("DELETE", f"/api/v1/kv/{key_path(key)}", params={"cas": cas},
                        decode=lambda r: 1, retry_write=cas is not None)  # fmt: skip
        return self._run(call)

    def list_page(
        self,
        prefix: str = "",
        *,
        cursor: str | None = None,
        limit: int | None = None,
        keys_only: bool = False,
        separator: str | None = None,
    ) -> dict:
        """One page of keys under `prefix`: `{"items","next_cursor"}` (+ `"prefixes"`)."""
        params = {"prefix": prefix, "cursor": cursor, "limit": limit, "separator": separator}
        if keys_only:
            params["keys"] = "1"
        return self._run(Call("GET", "/api/v1/kv/", params=params))

    def meta(self, key: str) -> dict:
        """Owner, group and mode of `key`."""
        return self._run(Call("GET", f"/api/v1/meta/{key_path(key)}"))

    def meta_set(self, key: str, **fields: Any) -> dict:
        """Set any of `owner`, `group`, `mode` of `key`."""
        return self._run(Call("PUT", f"/api/v1/meta/{key_path(key)}", json=fields))

    def history_page(self, key: str) -> dict:
        """`{"key","versions":[...]}`: the current version, then the previous ones."""
        return self._run(Call("GET", f"/api/v1/history/{key_path(key)}"))

    def revert(self, key: str, version: str) -> dict:
        """Write `version`'s value of `key` as its newest version."""
        return self._run(
            Call("POST", f"/api/v1/history/{key_path(key)}/revert", json={"version": version})
        )

    def txn(
        self,
        compare: list[dict] | None = None,
        success: list[dict] | None = None,
        failure: list[dict] | None = None,
    ) -> dict:
        """Apply `success` if every compare holds, else `failure`, atomically on one node:
        `{"succeeded","results"}`."""
        body = {"compare": compare or [], "success": success or [], "failure": failure or []}
        return self._run(Call("POST", "/api/v1/txn", json=body))

    def query_page(self, body: dict) -> dict:
        """One page of a query on values: `{"items","next_cursor"}`."""
        return self._run(Call("POST", "/api/v1/query", json=body))

    # --- pub/sub --------------------------------------------------------------------------------

    def publish(self, topic: str, data: JSON) -> str:
        """Publish `data` on `topic`; the message id."""
        return self._run(
            Call(
                "POST",
                f"/api/v1/pubsub/{key_path(topic)}",
                json={"data": data},
                decode=lambda r: r.json()["id"],
            )  # fmt: skip
        )

    def topics(self) -> list[dict]:
        """The topics the caller may see, with their subscriber counts."""
        return self._run(Call("GET", "/api/v1/pubsub/", decode=lambda r: r.json()["topics"]))

    # --- accounts -------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict:
        """`{"access","refresh"}` JWTs for a username and password."""
        return self._run(
            Call("POST", "/api/v1/auth/login", json={"username": username, "password": password})
        )

    def whoami(self) -> dict:
        return self._run(Call("GET", "/api/v1/whoami"))

    def user_create(self, username: str, **fields: Any) -> dict:
        """Create a user (`password`, `email`, `groups` optional)."""
        return self._run(Call("POST", "/api/v1/users", json={"username": username, **fields}))

    def user_list(self) -> list[dict]:
        return self._run(Call("GET", "/api/v1/users"))

    def user_get(self, username: str) -> dict:
        return self._run(Call("GET", f"/api/v1/users/{key_path(username)}"))

    def user_update(self, username: str, **fields: Any) -> dict:
        return self._run(Call("PATCH", f"/api/v1/users/{key_path(username)}", json=fields))

    def user_delete(self, username: str) -> None:
        return self._run(Call("DELETE", f"/api/v1/users/{key_path(username)}"))

    def group_create(self, name: str, **fields: Any) -> dict:
        """Create a group (`members` optional)."""
        return self._run(Call("POST", "/api/v1/groups", json={"name": name, **fields}))

    def group_list(self) -> list[dict]:
        return self._run(Call("GET", "/api/v1/groups"))

    def group_get(self, name: str) -> dict:
        return self._run(Call("GET", f"/api/v1/groups/{key_path(name)}"))

    def group_update(self, name: str, **fields: Any) -> dict:
        return self._run(Call("PATCH", f"/api/v1/groups/{key_path(name)}", json=fields))

    def group_delete(self, name: str) -> None:
        return self._run(Call("DELETE", f"/api/v1/groups/{key_path(name)}"))

    def token_create(self, user: str, scopes: list[str], **fields: Any) -> dict:
        """Issue a token (`expires_in`, `prefix`, `name` optional); its secret is only here."""
        return self._run(
            Call("POST", "/api/v1/tokens", json={"user": user, "scopes": scopes, **fields})
        )

    def token_list(self) -> list[dict]:
        return self._run(Call("GET", "/api/v1/tokens"))

    def token_revoke(self, token_id: str) -> None:
        return self._run(Call("DELETE", f"/api/v1/tokens/{key_path(str(token_id))}"))

    # --- ACL rules and schemas ------------------------------------------------------------------

    def rule_list(self) -> list[dict]:
        return self._run(Call("GET", "/api/v1/acl/"))

    def rule_get(self, prefix: str) -> dict:
        return self._run(Call("GET", f"/api/v1/acl/{key_path(prefix)}"))

    def rule_set(self, prefix: str, **fields: Any) -> dict:
        """Create or replace the rule of `prefix` (`owner`, `group`, `mode`)."""
        return self._run(Call("PUT", f"/api/v1/acl/{key_path(prefix)}", json=fields))

    def rule_delete(self, prefix: str) -> None:
        return self._run(Call("DELETE", f"/api/v1/acl/{key_path(prefix)}"))

    def schema_list(self) -> Any:
        return self._run(Call("GET", "/api/v1/schemas/"))

    def schema_get(self, prefix: str) -> dict:
        return self._run(Call("GET", f"/api/v1/schemas/{key_path(prefix)}"))

    def schema_set(self, prefix: str, schema: dict) -> dict:
        return self._run(Call("PUT", f"/api/v1/schemas/{key_path(prefix)}", json=schema))

    def schema_delete(self, prefix: str) -> None:
        return self._run(Call("DELETE", f"/api/v1/schemas/{key_path(prefix)}"))

    # --- cluster ---------------------------------------------------------------------------------

    def status(self) -> dict:
        return self._run(Call("GET", "/api/v1/status"))

    def members(self) -> list[dict]:
        return self._run(Call("GET", "/api/v1/cluster/members"))

    def health(self) -> dict:
        return self._run(Call("GET", "/health"))


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}
