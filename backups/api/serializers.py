from rest_framework import serializers


class BackupOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    created_at = serializers.IntegerField(help_text="When the snapshot was taken, ms since epoch.")
    size = serializers.IntegerField(help_text="Bytes of the file.")
    keys = serializers.IntegerField(help_text="Live keys in the snapshot.")
    sha256 = serializers.CharField(help_text="SHA-256 of the file (as `sha256sum` prints it).")
    node = serializers.CharField()
    revision = serializers.IntegerField(help_text="The node's revision at the snapshot.")
    merkle_root = serializers.CharField()


def backup_out(backup) -> dict:
    return {name: getattr(backup, name) for name in BackupOutputSerializer().fields}
