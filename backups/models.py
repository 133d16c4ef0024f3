"""The index of this node's backup files (the files themselves are in KVS_BACKUP_DIR)."""

from django.db import models


class Backup(models.Model):
    """One complete backup file of this node, and what its header says."""

    id = models.CharField(primary_key=True, max_length=128)
    file = models.CharField(max_length=255, help_text="File name in KVS_BACKUP_DIR.")
    created_at = models.BigIntegerField(help_text="When its snapshot was taken (ms).")
    size = models.BigIntegerField(help_text="Bytes of the compressed file.")
    keys = models.IntegerField(help_text="Live keys in the snapshot.")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the file, as sha256sum says.")
    node = models.CharField(max_length=64)
    revision = models.BigIntegerField()
    merkle_root = models.CharField(max_length=32)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
