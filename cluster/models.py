"""This node's identity."""

from django.db import models


class LocalNode(models.Model):
    """The single row naming this node: its id, when it joined, whether it is still syncing."""

    node_id = models.CharField(max_length=64)
    joined_at = models.BigIntegerField(help_text="Milliseconds since the epoch.")
    syncing = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.node_id
