"""Django's message middleware made lazy: no storage for requests that use none, the same
messages for those that do."""

from django.contrib import messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.functional import empty

from kvsite.middleware import LazyMessageMiddleware


def run(view):
    request = RequestFactory().get("/x")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    response = LazyMessageMiddleware(lambda r: view(r) or HttpResponse())(request)
    return request, response


def test_a_request_that_uses_no_messages_builds_no_storage():
    request, response = run(lambda r: None)
    assert request._messages._wrapped is empty  # never built
    assert "messages" not in response.cookies


def test_a_message_added_by_a_view_is_stored_as_django_stores_it():
    request, response = run(lambda r: messages.success(r, "Saved."))
    assert isinstance(request._messages._wrapped, FallbackStorage)
    assert "messages" in response.cookies  # the cookie storage took it
