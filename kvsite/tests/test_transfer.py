"""kvs export / import (kvsite.transfer) against the real API, served in process through Django's
WSGI handler (httpx's WSGI transport): pages and batches stream, lines round-trip, refused
lines are named by number, a second run writes nothing. Imports run with concurrency 1 here (the
test database is one connection's); tests/integration/test_backups.py runs them concurrently."""

import io
import json

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts.scopes import READ
from accounts.services import token_create
from kv.models import Entry
from kv.policy import schema_put
from kv.services import entry_delete_recurse, entry_put
from kvsite import transfer
from kvsite.transfer import Api, Refused, export_lines, import_lines

pytestmark = pytest.mark.django_db(transaction=False)


class Recording(httpx.WSGITransport):
    """The WSGI transport, noting each request's method and path."""

    def __init__(self):
        super().__init__(app=WSGIHandler())
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request):
        self.requests.append((request.method, request.url.path))
        return super().handle_request(request)


@pytest.fixture
def wire():
    """The transport; the test's database connection stays open across its requests (as
    Django's test client keeps it: the handler would close it at each request's end)."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield Recording()
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture
def api_for(wire, root_user):
    def make(scopes=("*",), user=None) -> Api:
        issued = token_create(user=user or root_user, scopes=list(scopes))
        return Api(["http://testserver"], issued.secret, transport=wire)

    return make


def _fill(count: int, prefix: str = "src/") -> None:
    for i in range(count):
        value = json.dumps({"n": i, "big": 2**70 + i}, separators=(",", ":"))
        entry_put(key=f"{prefix}{i:05d}", value=value)


def test_export_writes_every_key_under_the_prefix_page_by_page(api_for, wire, monkeypatch):
    monkeypatch.setattr(transfer, "PAGE_LIMIT", 7)
    _fill(30)
    entry_put(key="other/x", value="1")
    written_at: list[int] = []  # how many pages had been asked for at each line written

    class Out(io.StringIO):
        def write(self, text):
            written_at.append(len(wire.requests))
            return super().write(text)

    out = Out()
    assert export_lines(api_for(), out, prefix="src/") == 30
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["key"] for line in lines] == [f"src/{i:05d}" for i in range(30)]
    assert lines[3]["value"] == {"n": 3, "big": 2**70 + 3}
    assert set(lines[0]) == {"key", "value", "expires_at", "owner", "group", "mode"}
    assert len(wire.requests) == 5  # 30 keys, 7 a page
    assert written_at[0] == 1 and written_at[-1] == 5  # lines went out as pages came in


def test_round_trip_then_a_second_run_writes_nothing(api_for):
    _fill(25)
    entry_put(key="src/ttl", value='"t"', ttl=3600)
    out = io.StringIO()
    export_lines(api_for(), out, prefix="src/")
    before = dict(Entry.objects.filter(key__startswith="src/").values_list("key", "value"))
    expiry = Entry.objects.get(key="src/ttl").expires_at
    entry_delete_recurse(key="src")
    lines = out.getvalue().splitlines()
    refused: list[tuple[int, str]] = []
    report = import_lines(api_for(), lines, refuse=lambda *r: refused.append(r), concurrency=1)
    assert (report.written, report.skipped, report.refused) == (26, 0, 0) and not refused
    after = Entry.objects.filter(key__startswith="src/", deleted=False)
    assert dict(after.values_list("key", "value")) == before
    assert Entry.objects.get(key="src/ttl").expires_at == expiry
    again = import_lines(api_for(), lines, refuse=lambda *r: refused.append(r), concurrency=1)
    assert (again.written, again.skipped, again.refused) == (0, 26, 0)


def test_refused_lines_are_named_in_line_order(api_for, monkeypatch):
    monkeypatch.setattr(transfer, "BATCH_ITEMS", 2)
    schema_put(prefix="typed/", schema={"type": "object", "required": ["n"]})
    lines = [
        '{"key": "typed/a", "value": {"n": 1}}',
        "not json",
        '{"key": "typed/b", "value": {"m": 2}}',
        "",
        '{"key": "typed/c", "value": {"n": 3}, "colour": "red"}',
        '{"key": "typed/d", "value": {"n": 4}}',
        '{"key": "typed/e", "value": NaN}',
    ]
    refused: list[tuple[int, str]] = []
    report = import_lines(api_for(), lines, refuse=lambda *r: refused.append(r), concurrency=1)
    assert [number for number, _ in refused] == [2, 3, 5, 7]
    assert "not JSON" in refused[0][1] and "schema" in refused[1][1]
    assert "'colour'" in refused[2][1]
    assert (report.written, report.skipped, report.refused, report.lines) == (2, 0, 4, 7)


def test_import_batches_go_out_while_the_file_is_read(api_for, wire, monkeypatch):
    monkeypatch.setattr(transfer, "BATCH_ITEMS", 10)
    sent_at: list[int] = []

    def lines():
        for i in range(50):
            sent_at.append(sum(1 for m, p in wire.requests if p == "/api/v1/import"))
            yield json.dumps({"key": f"imp/{i}", "value": i})

    report = import_lines(api_for(), lines(), refuse=lambda *r: None, concurrency=1)
    assert report.written == 50
    assert sent_at[-1] >= 3  # the last line was read after earlier batches were sent


def test_a_token_without_write_stops_the_import_as_refused(api_for):
    with pytest.raises(Refused):
        import_lines(
            api_for(scopes=[READ]), ['{"key": "a", "value": 1}'], refuse=print, concurrency=1
        )


def test_an_unreachable_endpoint_fails_over_to_the_next(wire, root_user):
    issued = token_create(user=root_user, scopes=["*"])

    class Flaky(httpx.BaseTransport):
        def handle_request(self, request):
            if request.url.host == "down":
                raise httpx.ConnectError("refused", request=request)
            return wire.handle_request(request)

    api = Api(["http://down", "http://testserver"], issued.secret, transport=Flaky())
    entry_put(key="fo/a", value="1")
    out = io.StringIO()
    assert export_lines(api, out, prefix="fo/") == 1
