"""Declared indexes: one database index over the values at a path, for the keys under a prefix."""

import hashlib

from django.db import models

BUILDING, READY, FAILED = "building", "ready", "failed"


def index_name(prefix: str, path: str) -> str:
    """The name of the index of `path` under `prefix`: the same on every node."""
    digest = hashlib.sha256(f"{prefix}\x00{path}".encode()).hexdigest()[:16]
    return f"kvq_{digest}"


class ValueIndex(models.Model):
    """An index of the JSON values at `path` (a dot path) of the keys under `prefix`."""

    STATES = [(BUILDING, "building"), (READY, "ready"), (FAILED, "failed")]

    name = models.CharField(max_length=40, unique=True)
    prefix = models.CharField(max_length=1024)
    path = models.CharField(max_length=1024)
    state = models.CharField(max_length=16, choices=STATES, default=BUILDING)
    keys = models.BigIntegerField(
        null=True, blank=True, help_text="Keys under the prefix when it was built."
    )
    error = models.TextField(blank=True, default="")
    built_seconds = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "value index"
        verbose_name_plural = "value indexes"
        ordering = ["prefix", "path"]
        constraints = [
            models.UniqueConstraint(fields=["prefix", "path"], name="query_index_prefix_path")
        ]

    def __str__(self) -> str:
        return f"{self.prefix or '(all)'} {self.path}"
