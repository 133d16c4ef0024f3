from django.urls import path

from . import views

urlpatterns = [
    path("backups", views.BackupListApi.as_view(), name="backups"),
    path("backups/<str:backup_id>", views.BackupApi.as_view(), name="backup"),
]
