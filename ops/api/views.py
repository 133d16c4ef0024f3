"""GET /metrics: the node's metrics for Prometheus."""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from accounts.permissions import scope_check
from kvsite.openapi import errors

from ..metrics import CONTENT_TYPE, metrics_render

ADMIN_CLUSTER = "admin:cluster"


class ErrorsAsJson(BaseContentNegotiation):
    """The metrics are text whatever the Accept header says (Prometheus asks for OpenMetrics
    first); refusals are JSON, as everywhere."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetricsApi(APIView):
    """The node's metrics in the Prometheus text format: open to anyone unless
    KVS_METRICS_PUBLIC is off, then for a credential with `admin:cluster`."""

    permission_classes = [AllowAny]
    content_negotiation_class = ErrorsAsJson

    def get_authenticators(self):
        # Open metrics ignore credentials: a scraper's stale token is no reason to refuse them.
        return super().get_authenticators() if not settings.KVS_METRICS_PUBLIC else []

    @extend_schema(
        responses={
            (200, "text/plain"): OpenApiResponse(
                str, description="The Prometheus text format (version 0.0.4)."
            ),
            **errors(401, 403),
        },
        operation_id="metrics",
    )
    def get(self, request):
        if not settings.KVS_METRICS_PUBLIC:
            scope_check(request, ADMIN_CLUSTER)
        return HttpResponse(metrics_render(), content_type=CONTENT_TYPE)
