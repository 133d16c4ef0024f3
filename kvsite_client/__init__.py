"""kvsite_client: a Python client of kvsite clusters, on httpx and websockets only (no Django).

from kvsite_client import Client
with Client(endpoints=["http://127.0.0.1:8001", "http://127.0.0.1:8002"], token="kvs_...") as kv:
    kv.put("app/config", {"debug": True}, ttl="5m")
    kv.get("app/config")["value"]
    for event in kv.watch("app/"):
        ...
"""

from .aio import AsyncClient
from .client import Client
from .errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    KvsError,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "KvsError",
    "NotFound",
    "RateLimited",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]
