"""A node whose Redis or database server cannot be reached answers a 503 JSON error naming which,
never a 500; other database errors stay 500s."""

import sys

import pytest
import redis
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory
from kombu.exceptions import OperationalError as BrokerError

from kv import selectors
from kv.tests.api.helpers import url
from kvsite.exceptions import dependency_unavailable, json_server_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
            "redis",
        ),
        (redis.TimeoutError("Timeout reading from 127.0.0.1:6379"), "redis"),
        (BrokerError("Error 111 connecting"), "redis"),
        (OperationalError("server closed the connection unexpectedly"), "database"),
        (OperationalError("FATAL: the database system is shutting down"), "database"),
        (InterfaceError("the connection is closed"), "database"),
    ],
)
def test_a_lost_redis_or_database_is_a_503_naming_it(api, monkeypatch, error, reason):
    def fail(**kwargs):
        raise error

    monkeypatch.setattr(selectors, "entry_get", fail)
    answer = api.get(url("k"))
    assert answer.status_code == 503
    assert answer.json()["code"] == "unavailable"
    assert answer.json()["reason"] == reason
    assert answer["Retry-After"] == "1"


def test_other_database_errors_are_not_mistaken_for_an_outage():
    assert dependency_unavailable(OperationalError("no such table: kv_entry")) is None
    assert dependency_unavailable(ValueError("connection")) is None


def test_outside_drf_the_server_error_handler_answers_503_for_an_outage_and_500_otherwise():
    request = RequestFactory().get("/somewhere")
    try:
        raise redis.ConnectionError("Connection refused.")
    except redis.ConnectionError:
        answer = json_server_error(request)
    assert answer.status_code == 503
    assert b'"reason": "redis"' in answer.content or b'"reason":"redis"' in answer.content
    assert sys.exc_info()[1] is None
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        answer = json_server_error(request)
    assert answer.status_code == 500
