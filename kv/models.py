"""Entries (one row per key: its current version or tombstone), their history, Merkle leaves, and
the node's store state (hlc, revision counter, Merkle root)."""

from django.db import models

from .acl import mode_format
from .fields import JsonTextField
from .hlc import hlc_ms


class StoreState(models.Model):
    """The single row that serialises writes: the node's hlc, revision counter and Merkle root."""

    hlc = models.BigIntegerField(default=0)
    revision = models.BigIntegerField(default=0)
    merkle_root = models.CharField(max_length=32, default="0" * 32)

    class Meta:
        verbose_name = "store state"

    def __str__(self) -> str:
        return f"revision {self.revision}"


class Entry(models.Model):
    """The current version of one key; `deleted` marks a tombstone."""

    key = models.CharField(max_length=1024, unique=True)
    value = JsonTextField(null=True, blank=True, help_text="The value as JSON text.")
    version = models.UUIDField()
    hlc = models.BigIntegerField()
    origin = models.CharField(max_length=64, help_text="Node that wrote this version.")
    actor = models.CharField(
        max_length=150, null=True, blank=True, help_text="The user who wrote it (null: expiry)."
    )
    origin_joined_at = models.BigIntegerField(help_text="When the origin node joined (ms).")
    deleted = models.BooleanField(default=False)
    expires_at = models.BigIntegerField(null=True, blank=True, help_text="Milliseconds, or null.")
    owner = models.CharField(max_length=150, null=True, blank=True)
    group = models.CharField(max_length=150, null=True, blank=True)
    mode = models.PositiveSmallIntegerField()
    revision = models.BigIntegerField(db_index=True)
    digest = models.CharField(max_length=32)
    bucket = models.PositiveSmallIntegerField(db_index=True)

    class Meta:
        verbose_name_plural = "entries"
        indexes = [models.Index(fields=["deleted", "expires_at"], name="kv_entry_expiry")]

    def __str__(self) -> str:
        return self.key

    @property
    def timestamp(self) -> int:
        return hlc_ms(self.hlc)

    @property
    def mode_string(self) -> str:
        return mode_format(self.mode)

    def is_live(self, now_ms: int) -> bool:
        """Present to readers: not a tombstone and not past its expiry."""
        return not self.deleted and (self.expires_at is None or self.expires_at > now_ms)


class EntryVersion(models.Model):
    """A previous version of a key, kept for history (the newest `KVS_HISTORY_DEPTH`)."""

    key = models.CharField(max_length=1024)
    value = JsonTextField(null=True, blank=True)
    version = models.UUIDField()
    hlc = models.BigIntegerField()
    origin = models.CharField(max_length=64)
    actor = models.CharField(max_length=150, null=True, blank=True)
    deleted = models.BooleanField(default=False)
    expires_at = models.BigIntegerField(null=True, blank=True)
    owner = models.CharField(max_length=150, null=True, blank=True)
    group = models.CharField(max_length=150, null=True, blank=True)
    mode = models.PositiveSmallIntegerField()

    class Meta:
        indexes = [models.Index(fields=["key", "-hlc"], name="kv_version_key_hlc")]

    def __str__(self) -> str:
        return f"{self.key}@{self.version}"

    @property
    def timestamp(self) -> int:
        return hlc_ms(self.hlc)


class MerkleLeaf(models.Model):
    """One key-hash bucket: the XOR of the digests of the records in it."""

    bucket = models.PositiveSmallIntegerField(primary_key=True)
    hash = models.CharField(max_length=32, default="0" * 32)
    count = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"leaf {self.bucket}"


class AclRule(models.Model):
    """Who may create keys under a prefix, and the group and mode new keys there receive."""

    prefix = models.CharField(max_length=1024, unique=True)
    owner = models.CharField(max_length=150, null=True, blank=True)
    group = models.CharField(max_length=150, null=True, blank=True)
    mode = models.PositiveSmallIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "ACL rule"
        ordering = ["prefix"]

    def __str__(self) -> str:
        return f"{self.prefix} {mode_format(self.mode)}"

    @property
    def mode_string(self) -> str:
        return mode_format(self.mode)


class PrefixSchema(models.Model):
    """A JSON Schema that every value written under `prefix` must satisfy."""

    prefix = models.CharField(max_length=1024, unique=True)
    schema = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "schema"
        ordering = ["prefix"]

    def __str__(self) -> str:
        return self.prefix
