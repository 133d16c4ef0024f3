"""The floor benchmark's routes: a bare Django view and a bare DRF view, beside the node's own.

Both answer the same 16 bytes of JSON, to a GET or to a PUT (whose body they read and drop). They
run behind the same server, bridge and middleware as the API; the DRF view has no authentication,
permission or throttle, so what it costs over the Django view is DRF's own request, negotiation
and rendering machinery. The Django view is exempt from the CSRF check, as DRF's views are."""

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

BODY = b'{"floor": "ok"}\n'


@csrf_exempt
def bare_django(request):
    request.body  # noqa: B018 (read, as a PUT of the API reads it)
    return HttpResponse(BODY, content_type="application/json")


class BareDrfApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request):
        return Response({"floor": "ok"})

    def put(self, request):
        request.body  # noqa: B018
        return Response({"floor": "ok"})


urlpatterns = [
    path("floor/django", bare_django),
    path("floor/drf", BareDrfApi.as_view()),
    path("", include("kvsite.urls")),
]

handler400 = "kvsite.exceptions.json_bad_request"
handler403 = "kvsite.exceptions.json_permission_denied"
handler404 = "kvsite.exceptions.json_not_found"
handler500 = "kvsite.exceptions.json_server_error"
