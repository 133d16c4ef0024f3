from django.urls import path

from kv.api.urls import KeyConverter  # noqa: F401 (registers the kvkey converter)

from . import views

urlpatterns = [
    path("query", views.QueryApi.as_view(), name="query"),
    path("indexes/", views.IndexListApi.as_view(), name="index-list"),
    path("indexes/<kvkey:prefix>", views.IndexApi.as_view(), name="index"),
]
