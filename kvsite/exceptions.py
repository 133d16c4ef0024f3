"""The application's error base and the one handler that renders every error as JSON (the
admin's URLs excepted: they get admin pages)."""

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class KvsError(Exception):
    """An expected failure with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"
    default_detail = "Bad request."

    def __init__(self, detail: str | None = None, **extra):
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)

    def as_dict(self) -> dict:
        return {"detail": self.detail, "code": self.code, **self.extra}


class InvalidInput(KvsError):
    code = "invalid"


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


def exception_handler(exc, context):
    """Render KvsError and everything DRF knows as `{"detail", "code"}` JSON."""
    if isinstance(exc, KvsError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body too large.", "code": "too_large"}, status=413)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        detail = exc.detail if isinstance(exc, drf_exceptions.APIException) else None
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data.setdefault("code", code)
    elif response is not None:
        response.data = {"detail": "Invalid input.", "code": "invalid", "errors": response.data}
    return response


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
    return page or JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)


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
