from django.urls import path

from . import views

urlpatterns = [
    path("status", views.StatusApi.as_view(), name="status"),
    path("cluster/members", views.MembersApi.as_view(), name="cluster-members"),
    path("cluster/health", views.ClusterHealthApi.as_view(), name="cluster-health"),
    path("cluster/repair", views.ClusterRepairApi.as_view(), name="cluster-repair"),
    path("watchers", views.WatchersApi.as_view(), name="watchers"),
    path("cluster/leave", views.LeaveApi.as_view(), name="cluster-leave"),
    path("cluster/members/<str:node_id>", views.MemberApi.as_view(), name="cluster-member"),
]
