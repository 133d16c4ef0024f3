"""Documentation of what the cluster API answers (the views build plain dicts)."""

from rest_framework import serializers

from ..membership import STATUSES
from ..node import MODE_NORMAL, MODE_READ_ONLY, MODE_SYNCING

MODES = [MODE_NORMAL, MODE_READ_ONLY, MODE_SYNCING]


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    node_id = serializers.CharField()
    mode = serializers.ChoiceField(choices=MODES)


class StatusOutputSerializer(serializers.Serializer):
    node_id = serializers.CharField()
    mode = serializers.ChoiceField(choices=MODES)
    version = serializers.CharField()
    uptime_s = serializers.FloatField()
    keys = serializers.IntegerField(help_text="Live keys on this node.")
    revision = serializers.IntegerField()
    hlc = serializers.IntegerField()
    merkle_root = serializers.CharField()
    members = serializers.DictField(
        child=serializers.IntegerField(), help_text="How many members have each status."
    )


class MemberOutputSerializer(serializers.Serializer):
    node_id = serializers.CharField()
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=list(STATUSES))
    joined_at = serializers.IntegerField(help_text="Milliseconds since the epoch.")
    last_seen = serializers.IntegerField(help_text="This node's clock, ms since the epoch.")
    incarnation = serializers.IntegerField()


class ForgetOutputSerializer(serializers.Serializer):
    node_id = serializers.CharField()
    forgotten_by = serializers.ListField(child=serializers.CharField())
    unreachable = serializers.ListField(child=serializers.CharField())
