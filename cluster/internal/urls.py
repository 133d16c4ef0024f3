from django.urls import path

from . import views

urlpatterns = [
    path("gossip", views.GossipApi.as_view(), name="cluster-gossip"),
    path("forget", views.ForgetApi.as_view(), name="cluster-forget"),
    path("merkle", views.MerkleApi.as_view(), name="cluster-merkle"),
    path("digests", views.DigestsApi.as_view(), name="cluster-digests"),
    path("versions", views.VersionsApi.as_view(), name="cluster-versions"),
    path("health", views.HealthApi.as_view(), name="cluster-health-node"),
]

from . import pubsub_views  # noqa: E402

urlpatterns += [
    path("pubsub", pubsub_views.PubsubMessagesApi.as_view(), name="cluster-pubsub"),
    path("pubsub/topics", pubsub_views.PubsubTopicsApi.as_view(), name="cluster-pubsub-topics"),
    path("watchers", pubsub_views.WatchersApi.as_view(), name="cluster-watchers"),
]
