"""This node's identity, and its view of the cluster's members."""

from django.db import models


class LocalNode(models.Model):
    """The single row naming this node: its id, when it joined, whether it is still syncing."""

    node_id = models.CharField(max_length=64)
    joined_at = models.BigIntegerField(help_text="Milliseconds since the epoch.")
    syncing = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.node_id


class Member(models.Model):
    """One row of this node's member table (itself included), as gossip last left it."""

    class Status(models.TextChoices):
        ALIVE = "alive"
        SUSPECT = "suspect"
        DEAD = "dead"
        LEFT = "left"

    node_id = models.CharField(max_length=64, unique=True)
    url = models.CharField(max_length=255)
    joined_at = models.BigIntegerField(help_text="When the member joined, ms since the epoch.")
    incarnation = models.BigIntegerField(
        default=0, help_text="Raised only by the member itself, to refute suspicion or to leave."
    )
    heartbeat = models.BigIntegerField(default=0, help_text="Bumped by the member every round.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ALIVE)
    last_seen = models.BigIntegerField(
        default=0, help_text="When this node last heard news of the member (local ms)."
    )
    status_changed_at = models.BigIntegerField(default=0, help_text="Local ms.")

    class Meta:
        ordering = ["node_id"]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.status}, incarnation {self.incarnation})"


class PeerCursor(models.Model):
    """How far push replication has delivered this node's change feed to one peer."""

    node_id = models.CharField(max_length=64, unique=True)
    revision = models.BigIntegerField(default=0, help_text="Last local revision delivered.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.node_id} @ {self.revision}"


class AntiEntropyRound(models.Model):
    """The last anti-entropy exchange this node started with one peer (one row per peer)."""

    peer = models.CharField(max_length=64, unique=True)
    at = models.BigIntegerField(help_text="When it ended, ms since the epoch.")
    ok = models.BooleanField(default=True, help_text="False: the exchange failed.")
    equal = models.BooleanField(default=False, help_text="The roots agreed at once.")
    differing_buckets = models.IntegerField(default=0)
    pulled = models.IntegerField(default=0)
    pushed = models.IntegerField(default=0)
    bytes = models.BigIntegerField(default=0, help_text="JSON bytes sent and received.")
    seconds = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"with {self.peer} at {self.at}"
