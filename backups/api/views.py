"""This node's backups over HTTP (`admin:cluster`): list, take one, download, delete."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import scope_check
from kvsite.openapi import errors

from .. import selectors, services
from .serializers import BackupOutputSerializer, backup_out

ADMIN_CLUSTER = "admin:cluster"
ID_PARAM = OpenApiParameter(
    "backup_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="A backup's `id`."
)


class BackupListApi(APIView):
    """`GET`: this node's backups, newest first; `POST`: take one now (answers once complete)."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: BackupOutputSerializer(many=True), **errors(403)},
        operation_id="backups_list",
    )
    def get(self, request):
        scope_check(request, ADMIN_CLUSTER)
        return Response([backup_out(b) for b in selectors.backups_list()])

    @extend_schema(
        request=None,
        responses={201: BackupOutputSerializer, **errors(403)},
        operation_id="backups_create",
    )
    def post(self, request):
        scope_check(request, ADMIN_CLUSTER)
        return Response(backup_out(services.backup_create()), status=201)


class BackupApi(APIView):
    """`GET`: the backup file (zstd-compressed JSON lines); `DELETE`: delete it."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[ID_PARAM],
        responses={
            (200, "application/zstd"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The backup file."
            ),
            **errors(403, 404),
        },
        operation_id="backups_download",
    )
    def get(self, request, backup_id: str):
        scope_check(request, ADMIN_CLUSTER)
        backup = selectors.backup_get(backup_id=backup_id)
        response = FileResponse(
            open(selectors.backup_path(backup), "rb"),  # noqa: SIM115 (FileResponse closes it)
            as_attachment=True,
            filename=backup.file,
            content_type="application/zstd",
        )
        response["X-Checksum-Sha256"] = backup.sha256
        return response

    @extend_schema(
        parameters=[ID_PARAM],
        responses={204: OpenApiResponse(description="Deleted."), **errors(403, 404)},
        operation_id="backups_delete",
    )
    def delete(self, request, backup_id: str):
        scope_check(request, ADMIN_CLUSTER)
        services.backup_delete(backup_id=backup_id)
        return Response(status=204)
