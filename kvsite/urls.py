"""Routes: the REST API under /api/v1/, health, OpenAPI, the admin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cluster.api.views import HealthApi
from kv.api.urls import key_urlpatterns
from ops.api.views import MetricsApi

from .admin_site import favicon

urlpatterns = [
    *key_urlpatterns,
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("health", HealthApi.as_view(), name="health"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/v1/", include("kv.api.urls")),
    path("api/v1/", include("cluster.api.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("pubsub.api.urls")),
    path("api/v1/", include("backups.api.urls")),
    path("api/v1/", include("query.api.urls")),
    path("api/v1/", include("audit.api.urls")),
    path("cluster/internal/", include("cluster.internal.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]

handler400 = "kvsite.exceptions.json_bad_request"
handler403 = "kvsite.exceptions.json_permission_denied"
handler404 = "kvsite.exceptions.json_not_found"
handler500 = "kvsite.exceptions.json_server_error"
