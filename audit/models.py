"""The audit trail: one row per event, and the one row that holds the head of the hash chain."""

from django.db import models

GENESIS = "0" * 64  # the "previous hash" of the first event ever recorded


class AuditEvent(models.Model):
    """Something this node was asked to do, or refused; its hash covers the previous event's."""

    seq = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=150, null=True, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=1024, blank=True, default="")
    node = models.CharField(max_length=64)
    remote = models.CharField(max_length=64, null=True, blank=True)
    credential = models.CharField(max_length=64, null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        verbose_name = "audit event"
        # The trail is read-only: `view` (which also allows the verify button) is all there is.
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target}"


class AuditChain(models.Model):
    """The chain's head (the newest event) and anchor (the last pruned one), in one locked row.

    Appends lock this row, so events get consecutive seqs and each one's hash covers the one
    before, whichever process writes. The anchor carries its own keyed MAC: moving it forward
    (pruning events) needs the audit key, as rewriting an event does.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS)
    anchor_seq = models.BigIntegerField(default=0)
    anchor_hash = models.CharField(max_length=64, default=GENESIS)
    anchor_mac = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"audit chain at #{self.last_seq}"
