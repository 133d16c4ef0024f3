from django.urls import path, register_converter
from django.urls.converters import PathConverter

from . import views


class KeyConverter(PathConverter):
    """Any non-empty path, newlines included, so that bad keys reach the view and answer 400."""

    regex = "(?s:.+)"


register_converter(KeyConverter, "kvkey")

urlpatterns = [
    path("kv/", views.KeyListApi.as_view(), name="kv-list"),
    path("kv/<kvkey:key>", views.KeyApi.as_view(), name="kv-key"),
    path("history/<kvkey:key>", views.HistoryApi.as_view(), name="kv-history"),
    path("meta/<kvkey:key>", views.MetaApi.as_view(), name="kv-meta"),
]
