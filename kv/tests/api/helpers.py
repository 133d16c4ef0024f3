"""Small helpers shared by the key API tests: URLs, raw-JSON requests, node status."""

import json
from urllib.parse import quote, unquote, urlencode

from asgiref.sync import async_to_sync
from channels.testing import ApplicationCommunicator

from kv.models import Entry

DEFAULT_MODE = 0xF31  # cdwr--wr---r: owner cdwr, group -wr (bits 5, 4), others r (bit 0)


def url(key: str, *, base: str = "/api/v1/kv/", **query) -> str:
    """The URL of `key` (percent-encoded, '/' kept) with an optional query string."""
    path = base + quote(key, safe="/")
    return f"{path}?{urlencode(query)}" if query else path


def list_url(**query) -> str:
    return f"/api/v1/kv/?{urlencode(query)}" if query else "/api/v1/kv/"


def put_raw(client, key: str, body: bytes | str, **query):
    """PUT raw JSON bytes as the value of `key`."""
    data = body.encode() if isinstance(body, str) else body
    return client.put(url(key, **query), data=data, content_type="application/json")


def put_json(client, key: str, value, **query):
    """PUT a Python value, JSON-encoded, as the value of `key`."""
    return put_raw(client, key, json.dumps(value), **query)


def created(client, key: str, value=1, **query) -> dict:
    """PUT `value` under a key that must be new; the PUT answer."""
    response = put_json(client, key, value, **query)
    assert response.status_code == 201, response.content
    return response.json()


def node_status(client) -> dict:
    response = client.get("/api/v1/status")
    assert response.status_code == 200, response.content
    return response.json()


def expire(key: str) -> None:
    """Move `key`'s expiry into the past, as if its TTL had run out (no sleeping)."""
    assert Entry.objects.filter(key=key).update(expires_at=1) == 1


def assert_error(response, status: int) -> dict:
    """`response` is a JSON error with this status and a human-readable `detail`."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    return body


def asgi_request(
    method: str, raw_path: str, body: bytes = b"", *, app=None, raw: bool = True, headers=()
) -> tuple[int, dict]:
    """(status, JSON body) of a request through the project's ASGI application, as uvicorn hands
    it over: `path` percent-decoded with U+FFFD in place of bytes that are not UTF-8, and the
    path as sent in `raw_path` (left out with raw=False, as the ASGI spec allows)."""
    from kvsite.asgi import application

    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "query_string": query.encode(),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
        "server": ("127.0.0.1", 8001),
        "client": ("127.0.0.1", 50000),
    }
    if raw:
        scope["raw_path"] = path.encode()

    async def exchange():
        client = ApplicationCommunicator(app or application, scope)
        await client.send_input({"type": "http.request", "body": body})
        start = await client.receive_output(5)
        content = b""
        while True:
            chunk = await client.receive_output(5)
            content += chunk.get("body", b"")
            if not chunk.get("more_body"):
                break
        return start["status"], json.loads(content)

    return async_to_sync(exchange)()
