"""HTTP metrics: by method, route template (never the path) and status."""

from __future__ import annotations

import pytest

from ops.middleware import OTHER_METHOD, UNMATCHED

from .helpers import samples, value

pytestmark = pytest.mark.django_db
KEY_ROUTE = "/api/v1/kv/<kvkey:key>"


def requests(**labels) -> float:
    return value("kvs_http_requests_total", **labels)


def test_requests_are_counted_by_route_template_not_by_path(api):
    before = requests(method="PUT", route=KEY_ROUTE, status="201")
    api.put("/api/v1/kv/team/a", 1, format="json")
    api.put("/api/v1/kv/team/b", 1, format="json")
    assert requests(method="PUT", route=KEY_ROUTE, status="201") == before + 2
    routes = {s.labels["route"] for s in samples("kvs_http_requests_total")}
    assert not any("team" in route for route in routes)


def test_each_status_is_its_own_series(api):
    before = requests(method="GET", route=KEY_ROUTE, status="404")
    api.get("/api/v1/kv/absent")
    assert requests(method="GET", route=KEY_ROUTE, status="404") == before + 1


def test_a_path_no_route_matches_counts_as_unmatched(anon):
    before = requests(route=UNMATCHED, status="404")
    anon.get("/no/such/page/with/secret-looking/parts")
    assert requests(route=UNMATCHED, status="404") == before + 1
    routes = {s.labels["route"] for s in samples("kvs_http_requests_total")}
    assert not any("secret" in route for route in routes)


def test_methods_outside_the_standard_ones_count_as_other(anon):
    before = requests(method=OTHER_METHOD, route="/health")
    anon.generic("BREW-COFFEE-NOW", "/health")
    assert requests(method=OTHER_METHOD, route="/health") == before + 1
    methods = {s.labels["method"] for s in samples("kvs_http_requests_total")}
    assert "BREW-COFFEE-NOW" not in methods


def test_latency_is_observed_per_request(anon):
    name = "kvs_http_request_duration_seconds"
    labels = {"method": "GET", "route": "/health", "status": "200"}
    count, total = value(f"{name}_count", **labels), value(f"{name}_sum", **labels)
    anon.get("/health")
    assert value(f"{name}_count", **labels) == count + 1
    assert value(f"{name}_sum", **labels) > total
    assert value(f"{name}_bucket", le="+Inf", **labels) == count + 1
