"""The exceptions of kvsite_client: one per kind of answer, each carrying the API's `code` and
`detail` (and the HTTP `status`)."""

from __future__ import annotations


class KvsError(Exception):
    """An answer of a kvsite node that is not a success, or no answer at all."""

    status: int | None = None

    def __init__(
        self, detail: str, *, code: str | None = None, status: int | None = None, body=None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        if status is not None:
            self.status = status
        self.body = body if body is not None else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r}, code={self.code!r}, status={self.status})"


class InvalidRequest(KvsError):
    """400: a bad key, value, parameter or body."""

    status = 400


class Unauthorized(KvsError):
    """401: the credential is missing, invalid, expired or revoked."""

    status = 401


class Forbidden(KvsError):
    """403: the credential lacks a scope or an ACL permission, or the node is read-only."""

    status = 403


class NotFound(KvsError):
    """404: the key (or user, group, token, rule, schema) does not exist."""

    status = 404


class Conflict(KvsError):
    """409: a `cas` that does not match (or another conflict); `body` holds the current version."""

    status = 409


class TooLarge(KvsError):
    """413: the value or body is too large."""

    status = 413


class RateLimited(KvsError):
    """429: throttled; `retry_after` is the server's hint in seconds, if it gave one."""

    status = 429
    retry_after: float | None = None


class Unavailable(KvsError):
    """503 from every endpoint, or no endpoint reachable: try again later. A 507 (a node's disk
    is full, `code` "insufficient_storage": nothing was written) is one too, so a write goes on
    to the next endpoint."""

    status = 503


BY_STATUS: dict[int, type[KvsError]] = {
    cls.status: cls
    for cls in (InvalidRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, RateLimited)
}
BY_STATUS[503] = Unavailable
BY_STATUS[507] = Unavailable


def error_for(status: int, body: object) -> KvsError:
    """The exception for an error answer with this status and (decoded) body."""
    detail, code = f"HTTP {status}", None
    if isinstance(body, dict):
        detail = str(body.get("detail") or detail)
        code = body.get("code")
    cls = BY_STATUS.get(status, KvsError)
    return cls(detail, code=code, status=status, body=body if isinstance(body, dict) else None)
