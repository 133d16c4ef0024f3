"""The application's error base and the one handler that renders every error as JSON (the
admin's URLs excepted: they get admin pages).

Every error answer is `{"detail": str, "code": str, ...}`; a code means one thing everywhere, and
DRF's own codes are mapped onto these (`permission_denied` is `forbidden`, `not_authenticated`
and `authentication_failed` are `unauthenticated`, `parse_error` is `invalid_json`):

    400 invalid, invalid_json, invalid_key, invalid_mode, schema_violation
    401 unauthenticated    403 forbidden    404 not_found    405 method_not_allowed
    406 not_acceptable    409 conflict    413 too_large    429 throttled    503 unavailable
    507 insufficient_storage (the node's disk is full: nothing was written, reads still work)
    500 internal
"""

import errno
import sqlite3

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class KvsError(Exception):
    """An expected failure with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "invalid"
    default_detail = "Bad request."

    def __init__(self, detail: str | None = None, **extra):
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)

    def as_dict(self) -> dict:
        return {"detail": self.detail, "code": self.code, **self.extra}


class InvalidInput(KvsError):
    code = "invalid"


class InvalidJson(InvalidInput):
    """A body or frame that is not JSON, or is JSON beyond the limits (depth, integer size)."""

    code = "invalid_json"


class NotFound(KvsError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(KvsError):
    status_code = 409
    code = "conflict"


class TooLarge(KvsError):
    status_code = 413
    code = "too_large"


class Forbidden(KvsError):
    status_code = 403
    code = "forbidden"
    default_detail = "You do not have permission to perform this action."


class Unavailable(KvsError):
    status_code = 503
    code = "unavailable"


class InsufficientStorage(KvsError):
    """The node's database or disk is full: the write was rolled back, nothing was stored."""

    status_code = 507
    code = "insufficient_storage"
    default_detail = (
        "This node's disk is full: nothing was written. Reads still work; retry on another "
        "node, or here once space is freed."
    )


# SQLite's message for SQLITE_FULL; PostgreSQL's SQLSTATE for disk_full.
SQLITE_FULL_MESSAGE = "database or disk is full"
POSTGRES_DISK_FULL = "53100"
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def storage_full(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, says the disk or database is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and SQLITE_FULL_MESSAGE in str(exc):
            return True
        if getattr(exc, "sqlstate", None) == POSTGRES_DISK_FULL:  # psycopg's DiskFull
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# The code of a DRF (or Django) error, by its HTTP status: DRF's codes differ for one meaning
# (a refused credential is `authentication_failed`, a missing one `not_authenticated`, and DRF
# turns either into a 403 when no authenticator can ask for a credential).
STATUS_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    429: "throttled",
    503: "unavailable",
    507: "insufficient_storage",
}


def error_code(exc: Exception, status: int) -> str:
    """The stable code of an error DRF answered with `status`."""
    if isinstance(exc, drf_exceptions.ParseError):
        return InvalidJson.code
    return STATUS_CODES.get(status, InvalidInput.code)


def exception_handler(exc, context):
    """Render KvsError and everything DRF knows as `{"detail", "code"}` JSON."""
    if isinstance(exc, KvsError):
        return Response(exc.as_dict(), status=exc.status_code)
    if storage_full(exc):
        error = InsufficientStorage()
        return Response(error.as_dict(), status=error.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body too large.", "code": "too_large"}, status=413)
    # Imported here: importing rest_framework.views imports the parser, which imports this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data["code"] = error_code(exc, response.status_code)
    elif response is not None:
        response.data = {"detail": "Invalid input.", "code": "invalid", "errors": response.data}
    return response


def error_body(exc: Exception) -> tuple[int, dict]:
    """The HTTP status and JSON body the REST API answers for `exc` (a KvsError or an
    APIException; anything else is raised again)."""
    if isinstance(exc, KvsError):
        return exc.status_code, exc.as_dict()
    if storage_full(exc):
        return InsufficientStorage.status_code, InsufficientStorage().as_dict()
    if isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else "Invalid input."
        return exc.status_code, {"detail": str(detail), "code": error_code(exc, exc.status_code)}
    raise exc


# Django-level handlers, so that even paths outside DRF never answer with HTML; admin URLs get the
# admin's own error pages instead.


def _admin_page(request, status: int, exception=None):
    from django.contrib import admin

    from .admin_site import is_admin_path

    if not is_admin_path(request):
        return None
    return admin.site.error_response(request, status, exception)


def json_bad_request(request, exception=None):
    page = _admin_page(request, 400, exception)
    return page or JsonResponse({"detail": "Bad request.", "code": "invalid"}, status=400)


def json_permission_denied(request, exception=None):
    page = _admin_page(request, 403, exception)
    return page or JsonResponse({"detail": "Forbidden.", "code": "forbidden"}, status=403)


def json_not_found(request, exception=None):
    page = _admin_page(request, 404, exception)
    return page or JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def json_server_error(request):
    page = _admin_page(request, 500)
    return page or JsonResponse({"detail": "Internal error.", "code": "internal"}, status=500)


__all__ = ["Http404", "PermissionDenied"]
