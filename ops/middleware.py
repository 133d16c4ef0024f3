"""HTTP metrics: every answer Django gives, counted and timed by method, route and status.

The route is the URL pattern that matched (`request.resolver_match.route`, e.g.
`/api/v1/kv/<path:key>`), never the path itself, which holds keys; a request that matched none
is counted under `unmatched`. Methods outside the standard ones count as `other`. So every label
takes a bounded set of values. Answers given before Django (the HTTP edge's 408, 413, 431) are not
counted here.
"""

from __future__ import annotations

from time import perf_counter

from .metrics import Counter, Histogram

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED = "unmatched"
LABELS = ["method", "route", "status"]
# Seconds: most answers of a local node take well under 10 ms; the top buckets catch stalls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "kvs_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    LABELS,
)
HTTP_LATENCY = Histogram(
    "kvs_http_request_duration_seconds",
    "Time from a request reaching Django to its answer, by method, route template and status.",
    LABELS,
    buckets=LATENCY_BUCKETS,
)


def route_label(request) -> str:
    """The route template a request matched (`unmatched` if none), as a path."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return UNMATCHED
    return "/" + match.route


class HttpMetricsMiddleware:
    """Count and time every answer (the first middleware, so that it sees all of them)."""

    def __init__(self, get_response):
        self.get_response = get_response
        # (method, route, status) -> its counter and histogram: labels() costs more than both
        # updates together, and the set of keys is bounded.
        self._series: dict[tuple[str, str, int], tuple] = {}

    def __call__(self, request):
        started = perf_counter()
        response = self.get_response(request)
        elapsed = perf_counter() - started
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        labels = (method, route_label(request), response.status_code)
        series = self._series.get(labels)
        if series is None:
            series = self._series.setdefault(
                labels, (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
            )
        series[0].inc()
        series[1].observe(elapsed)
        return response
