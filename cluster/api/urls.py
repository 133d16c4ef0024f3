from django.urls import path

from . import views

urlpatterns = [
    path("status", views.StatusApi.as_view(), name="status"),
]
