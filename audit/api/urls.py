from django.urls import path

from . import views

urlpatterns = [
    path("audit", views.AuditListApi.as_view(), name="audit"),
    path("audit/verify", views.AuditVerifyApi.as_view(), name="audit-verify"),
]
