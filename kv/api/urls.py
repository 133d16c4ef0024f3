from django.urls import path

from . import views

urlpatterns = [
    path("kv/", views.KeyListApi.as_view(), name="kv-list"),
    path("kv/<path:key>", views.KeyApi.as_view(), name="kv-key"),
    path("history/<path:key>", views.HistoryApi.as_view(), name="kv-history"),
    path("meta/<path:key>", views.MetaApi.as_view(), name="kv-meta"),
]
