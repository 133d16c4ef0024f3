"""Request checks that come before any view (a URL path must be UTF-8), and Django's message
middleware made lazy."""

from urllib.parse import unquote_to_bytes

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject, empty

from kv.keys import InvalidKey
from kvsite.exceptions import InvalidInput

# Paths whose rest is a key, a prefix or a topic.
KEY_PATHS = (
    "/api/v1/kv/",
    "/api/v1/history/",
    "/api/v1/meta/",
    "/api/v1/acl/",
    "/api/v1/schemas/",
    "/api/v1/pubsub/",
)


def path_bytes(request) -> bytes | None:
    """The request's path as the client sent it, percent-decoded (the ASGI scope's raw_path);
    None if the server kept no copy. What views see is decoded already, with loss: ASGI servers
    put U+FFFD in place of bytes that are not UTF-8 (which the key rules then refuse), and
    Django's WSGI handler (its test client) writes them as `%XX` text."""
    scope = getattr(request, "scope", None) or request.META.get("asgi.scope")
    raw = scope.get("raw_path") if scope is not None else None  # ASGI handler; kvsite.bridge
    return None if raw is None else unquote_to_bytes(raw)


class Utf8PathMiddleware:
    """Answer 400 (`invalid_key` where the path holds a key, else `invalid`) to a request whose
    path is not UTF-8 once percent-decoded, before anything reads the path."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = path_bytes(request)
        if raw is not None and not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return self._refuse(request)
        return self.get_response(request)

    def _refuse(self, request) -> JsonResponse:
        error = InvalidKey if request.path.startswith(KEY_PATHS) else InvalidInput
        detail = "The URL path is not valid UTF-8 once percent-decoded."
        return JsonResponse(error(detail).as_dict(), status=400)


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with the message storage made only once a view uses it (the
    admin does; an API request never does): building it reads the cookie and the session and
    costs a GET about a twentieth of its CPU (docs/performance.md). A storage never used holds
    nothing to store, so answers are the same."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
