"""Small helpers shared by the key API tests: URLs, raw-JSON requests, node status."""

import json
from urllib.parse import quote, urlencode

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
