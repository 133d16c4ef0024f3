from django.urls import path, re_path

from . import views

urlpatterns = [
    path("pubsub/", views.TopicListApi.as_view(), name="pubsub-topics"),
    # Any non-empty rest of the path, newlines included, so that bad topics reach the view (400).
    re_path(r"^pubsub/(?P<topic>(?s:.+))$", views.TopicPublishApi.as_view(), name="pubsub-topic"),
]
