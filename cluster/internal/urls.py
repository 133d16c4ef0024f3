from django.urls import path

from . import views

urlpatterns = [
    path("gossip", views.GossipApi.as_view(), name="cluster-gossip"),
]
